"""What ``samora train`` does with an existing output_dir, decided before anything loads or changes."""

from __future__ import annotations

import pytest
import yaml

from samora.run.run_config import ConfigError, load_run_config
from samora.run.run_folder import RunPlan, config_differences, plan_run_folder, prepare_run_folder


def write_run(folder, config, finished=False):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    if finished:
        (folder / "metrics.json").write_text("{}")


def test_plans_for_each_state_of_the_folder(tmp_path):
    config = load_run_config(overrides=[f"output_dir={tmp_path / 'run'}"])
    run = tmp_path / "run"
    assert plan_run_folder(run, config) == RunPlan("new")
    run.mkdir()
    (run / ".config.yaml.tmp").write_text("")  # another process is creating this run
    assert plan_run_folder(run, config) == RunPlan("new")
    write_run(run, config)
    assert plan_run_folder(run, config) == RunPlan("resume", None)  # no checkpoint yet: from step 0
    moved = load_run_config(overrides=[f"output_dir={tmp_path / 'elsewhere'}", "train.resume=false"])
    assert config_differences(config.to_dict(), moved.to_dict()) == []  # how to run is not what the run is
    assert plan_run_folder(run, load_run_config(overrides=["adapter.r=8", "adapter.method=samora"])).action == "resume"
    assert plan_run_folder(run, moved) == RunPlan("replace")
    other = load_run_config(overrides=["adapter.r=4", "eval.limit=3"])
    (run / "history.jsonl").write_text('{"loss": 2.0, "step": 1}\n')  # it trained a step
    with pytest.raises(
        ConfigError,
        match=r"another configuration \(adapter.r: 8 in the folder, 4 now; "
        r"eval.limit: None in the folder, 3 now\)",
    ):
        plan_run_folder(run, other)
    assert plan_run_folder(run, other, overwrite=True) == RunPlan("replace")
    write_run(run, config, finished=True)
    with pytest.raises(ConfigError, match="holds a finished run"):
        plan_run_folder(run, config)
    with pytest.raises(ConfigError, match="holds a finished run"):
        plan_run_folder(run, moved)  # --no-resume does not discard a finished run


def test_replacing_renames_the_old_run_aside_in_one_step(tmp_path, monkeypatch):
    import os

    import samora.run.run_folder

    run = tmp_path / "run"
    write_run(run, load_run_config(), finished=True)
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(samora.run.run_folder.os, "replace", lambda a, b: (renames.append((a, b)), real_replace(a, b)))
    prepare_run_folder(run, RunPlan("replace"))
    assert len(renames) == 1 and renames[0][0] == run and renames[0][1].parent == tmp_path
    assert run.is_dir() and not any(run.iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the old run is deleted, not left beside it


def test_a_saved_config_that_cannot_be_read_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("[unclosed")
    with pytest.raises(ConfigError, match="(?s)cannot be read .*pass --overwrite"):
        plan_run_folder(run, load_run_config())
    (run / "config.yaml").write_text("train: {per_device_train_batch_size: many}")
    with pytest.raises(
        ConfigError,
        match="not a valid run configuration .*train.per_device_train_batch_size must be an int > 0, got 'many'",
    ):
        plan_run_folder(run, load_run_config())
