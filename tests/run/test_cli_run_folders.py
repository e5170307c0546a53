"""``samora eval`` / ``analyze`` of a run folder use the run's configuration and write into it, never
over an earlier result; a requested task without data is an error; a PEFT LoRA folder evaluates too."""

from __future__ import annotations

import json

import pytest

import samora.run.pipeline
from samora.cli import main
from samora.run.run_config import load_run_config
from samora.run.run_folder import new_results_folder, saved_run_values
from tests.helpers import run_overrides


@pytest.fixture(scope="module")
def short_run(tiny_model_dir, tmp_path_factory):
    """A finished SAMoRA run with max_length 96, two tasks and the harness template."""
    run_dir = tmp_path_factory.mktemp("short") / "run"
    assert (
        main(
            [
                "train",
                *run_overrides(tiny_model_dir, run_dir),
                "data.max_length=96",
                "data.tasks=[piqa, boolq]",
                "data.template=harness",
                "eval.before=false",
                "eval.limit=2",
                "train.max_steps=1",
            ]
        )
        == 0
    )
    return run_dir


def capture_analysis_config(monkeypatch) -> list:
    seen = []
    monkeypatch.setattr(
        samora.run.pipeline,
        "run_analysis_on",
        lambda model, tokenizer, config, tasks, output: seen.append((config, tasks)) or {"usage": {}},
    )
    return seen


def test_analyze_takes_the_runs_settings_unless_overridden(short_run, monkeypatch):
    seen = capture_analysis_config(monkeypatch)
    assert main(["analyze", str(short_run)]) == 0
    assert main(["analyze", str(short_run), "data.max_length=64"]) == 0
    (run_config, tasks), (overridden, _) = seen
    assert run_config.data.max_length == 96 and overridden.data.max_length == 64  # not the default 256
    assert run_config.data.template == "harness" and tasks == ["piqa", "boolq"]
    assert run_config.output_dir == str(short_run)


def test_results_stay_in_the_run_unless_output_dir_is_given_on_the_command_line(short_run, tmp_path, monkeypatch):
    seen = capture_analysis_config(monkeypatch)
    training_config = tmp_path / "train.yaml"  # a file written for training names its own output_dir
    training_config.write_text(f"data: {{max_length: 80}}\noutput_dir: {tmp_path / 'runs' / 'other'}\n")
    assert main(["analyze", str(short_run), str(training_config)]) == 0
    assert main(["analyze", str(short_run), f"output_dir={tmp_path / 'elsewhere'}"]) == 0
    (with_file, _), (moved, _) = seen
    assert with_file.output_dir == str(short_run) and with_file.data.max_length == 80  # the file's key
    assert moved.output_dir == str(tmp_path / "elsewhere") and (tmp_path / "elsewhere" / "analysis").is_dir()


def test_each_analysis_gets_its_own_folder_in_the_run(short_run, monkeypatch, capsys):
    capture_analysis_config(monkeypatch)
    before = {p.name for p in short_run.iterdir()}
    assert main(["analyze", str(short_run)]) == 0
    new = {p.name for p in short_run.iterdir()} - before
    assert len(new) == 1 and new.pop().startswith("analysis-")
    assert (short_run / "analysis" / "analysis.json").is_file()  # train's analysis is kept
    assert f"analysis: {short_run}/analysis-" in capsys.readouterr().out


def test_eval_of_a_run_uses_its_tasks_template_and_writes_into_it(short_run, capsys):
    assert main(["eval", "--adapter", str(short_run)]) == 0
    results = json.loads((short_run / "evals" / "eval-001" / "eval.json").read_text())
    assert list(results["tasks"]) == ["piqa", "boolq"] and results["settings"]["limit"] == 2
    assert all(entry["template"]["name"] == "harness" for entry in results["tasks"].values())
    assert (
        results["tasks"]["piqa"]["metrics"]
        == json.loads((short_run / "metrics.json").read_text())["after"]["tasks"]["piqa"]["metrics"]
    )


def test_new_results_folders_are_numbered_past_the_highest_and_never_reused(tmp_path):
    assert new_results_folder(tmp_path, "eval", numbered_first=True) == tmp_path / "eval-001"
    (tmp_path / "eval-007").mkdir()
    (tmp_path / "eval-notes").mkdir()
    assert new_results_folder(tmp_path, "eval", numbered_first=True) == tmp_path / "eval-008"
    assert new_results_folder(tmp_path, "analysis", numbered_first=False) == tmp_path / "analysis"
    assert new_results_folder(tmp_path, "analysis", numbered_first=False) == tmp_path / "analysis-002"


def test_the_runs_config_is_a_base_layer_that_the_user_overrides_key_by_key(tmp_path):
    (tmp_path / "run" / "adapter").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text(
        "data: {tasks: [piqa], max_length: 96, template: harness}\ntrain: {seed: 7, resume: false}\n"
        "compare: {methods: [lora, samora]}\noutput_dir: somewhere/else\n"
    )
    base = saved_run_values(tmp_path / "run")
    config = load_run_config(None, ["eval.limit=3", "data.tasks=[boolq]"], base=base)
    assert (config.data.max_length, config.data.template, config.train.seed) == (96, "harness", 7)
    assert config.data.tasks == ["boolq"] and config.eval.limit == 3
    assert config.output_dir == str(tmp_path / "run")  # where the folder is now, not where it was trained
    assert config.compare.methods == [] and config.train.resume is True  # how it was trained, not evaluated
    assert saved_run_values(tmp_path / "run" / "adapter") is None and saved_run_values(None) is None


@pytest.mark.parametrize("command", ["eval", "train", "compare"])
def test_a_requested_task_without_data_is_an_error_naming_it(command, tiny_model_dir, tmp_path, capsys):
    args = [
        command,
        *run_overrides(tiny_model_dir, tmp_path / "run"),
        f"data.source={tmp_path / 'typo'}",
        "data.tasks=[piqa, boolq]",
    ]
    if command == "compare":
        args.append("compare.methods=[lora]")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no data for" in err and "piqa (" in err and "boolq (" in err and "typo" in err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_a_benchmark_task_no_source_holds_is_an_error_not_a_skip(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAMORA_CACHE", str(tmp_path / "cache"))  # no GLUE folder in the cache
    monkeypatch.delenv("SAMORA_GLUE_DIR", raising=False)
    assert main(["eval", *run_overrides(tiny_model_dir, tmp_path / "out"), "data.tasks=[sst2, cola]"]) == 2
    err = capsys.readouterr().err
    assert "cola (validation split)" in err and "sst2 (" not in err and "SAMORA_GLUE_DIR" in err


def test_a_peft_lora_folder_evaluates_on_the_base_it_names(tiny_model_dir, tmp_path, capsys):
    import peft
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    lora = peft.get_peft_model(
        base, peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    lora.save_pretrained(tmp_path / "peft")
    overrides = [o for o in run_overrides(tiny_model_dir, tmp_path / "out") if not o.startswith("model.name")]
    assert main(["eval", "--adapter", str(tmp_path / "peft"), *overrides, "data.tasks=[piqa]"]) == 0
    results = json.loads((tmp_path / "out" / "evals" / "eval-001" / "eval.json").read_text())
    assert results["adapter"]["method"] == "lora" and results["tasks"]["piqa"]["n"] == 4
    assert results["model"]["name_or_path"] == str(tiny_model_dir)
    assert main(["analyze", str(tmp_path / "peft"), *overrides]) == 0
    assert "not analysed: method 'lora' has no router" in capsys.readouterr().out
