"""A run that fails before its first step leaves nothing that blocks the corrected command (issue #24,
defect 3): the folder of a run that never trained a step is started over, saying why."""

from __future__ import annotations

import pytest
import yaml

from samora.cli import main
from samora.run.run_config import ConfigError, load_run_config
from samora.run.run_folder import RunPlan, plan_run_folder
from tests.helpers import run_overrides


def test_the_corrected_command_runs_after_a_failure_at_model_load(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", *run_overrides(tiny_model_dir, run, "adapter.target_modules=[nope]")]) != 0
    assert "nope" in capsys.readouterr().err
    assert main(["train", *run_overrides(tiny_model_dir, run)]) == 0
    assert (run / "metrics.json").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["adapter"].get("target_modules") is None


def test_only_a_folder_that_trained_a_step_is_protected(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    failed = load_run_config(overrides=["adapter.r=4", f"output_dir={run}"])
    (run / "config.yaml").write_text(yaml.safe_dump(failed.to_dict()))
    (run / "samples_before.jsonl").write_text("{}\n")  # evaluated the base model, then failed
    (run / "history.jsonl").write_text("")  # training began, no step logged
    fixed = load_run_config(overrides=["adapter.r=8", f"output_dir={run}"])
    plan = plan_run_folder(run, fixed)
    assert plan == RunPlan("replace", reason="its run of another configuration failed before training a step")
    assert "failed before training a step" in plan.describe(run)
    (run / "adapter" / "checkpoint-2").mkdir(parents=True)  # it trained: its configuration protects it
    assert plan_run_folder(run, load_run_config(overrides=["adapter.r=4"])).action == "resume"
    (run / "history.jsonl").write_text('{"loss": 2.0, "step": 1}\n')
    with pytest.raises(ConfigError, match="holds an unfinished run with another configuration"):
        plan_run_folder(run, fixed)
