"""``samora serve``'s options: checked before anything loads, with errors that say what to change."""

from __future__ import annotations

import pytest

from samora.cli import build_parser, main
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


def test_model_overrides_and_dtype_reach_the_model_loading_options(adapter_dir, tiny_model_dir):
    args = build_parser().parse_args(
        ["serve", str(adapter_dir), f"model.name={tiny_model_dir}", "--dtype", "bfloat16"]
    )
    config = run_config(args)
    assert (config.model.name, config.model.dtype) == (str(tiny_model_dir), "bfloat16")


def test_a_peft_lora_folder_is_served_under_its_own_name_without_tasks(tiny_model_dir, tmp_path):
    from transformers import LlamaForCausalLM

    import samora
    from samora.run.model_loading import read_saved_adapter
    from samora.serve.loading import describe

    model = samora.get_model(LlamaForCausalLM.from_pretrained(tiny_model_dir), samora.LoRAConfig(r=4))
    [folder] = samora.export_peft(model, tmp_path / "exported")
    args = build_parser().parse_args(["serve", str(folder), "--max-prompt-tokens", "100000"])
    served, tokenizer = describe(args, folder, run_config(args), read_saved_adapter(folder))
    assert (served.method, served.tasks, served.model_ids()) == ("lora", (), ["exported"])
    assert served.route("exported").task_id is None
    assert served.max_prompt_tokens == served.context_window == 512  # capped at the model's window
    assert tokenizer.chat_template is not None
