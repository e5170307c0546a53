"""``samora serve``'s options: checked before anything loads, with errors that say what to change."""

from __future__ import annotations

import pytest

from samora.run.cli import build_parser, main
from samora.serve.loading import run_config


@pytest.mark.parametrize(
    "options,message",
    [
        (["--max-batch-size", "0"], "--max-batch-size must be at least 1"),
        (["--batch-timeout", "-1"], "--batch-timeout must be 0 or more"),
        (["--port", "80"], "--port must be from 1024 to 65535"),
        (["--max-tokens-limit", "0"], "--max-tokens-limit must be at least 1"),
    ],
)
def test_a_bad_option_is_a_configuration_error(options, message, capsys):
    assert main(["serve", "runs/anything", *options]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_adapter_folder_is_an_error_naming_it(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["train.max_steps=3"], "takes model loading options as model.key=value"),
        (["--default-task", "mnli"], "--default-task 'mnli' is not a task of this adapter"),
    ],
)
def test_what_the_adapter_cannot_serve_is_refused_before_the_server_starts(adapter_dir, extra, message, capsys):
    overrides = [item for item in extra if "=" in item]
    options = [item for item in extra if "=" not in item]
    assert main(["serve", str(adapter_dir), *overrides, *options]) == 2
    assert message in capsys.readouterr().err


def test_model_overrides_and_dtype_reach_the_model_loading_options(adapter_dir):
    args = build_parser().parse_args(["serve", str(adapter_dir), "model.name=/some/base", "--dtype", "bfloat16"])
    config = run_config(args)
    assert (config.model.name, config.model.dtype) == ("/some/base", "bfloat16")
