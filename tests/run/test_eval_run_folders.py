"""eval / analyze never evaluate silently wrong (issue #24, defect 4): the adapter's own tasks unless told
otherwise, a loud warning for tasks it never saw, no guessing without the run's config.yaml, results
inside the run folder, and a compare cell's folder accepted like any run folder."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import yaml

from samora.cli import main
from tests.helpers import run_overrides


@pytest.fixture(scope="module")
def two_task_run(tiny_model_dir, tmp_path_factory):
    """A finished LoRA run on piqa and boolq (one step, 2 examples per task evaluated)."""
    run_dir = tmp_path_factory.mktemp("two-task") / "run"
    overrides = [*run_overrides(tiny_model_dir, run_dir), "data.tasks=[piqa, boolq]", "adapter.method=lora"]
    assert main(["train", *overrides, "eval.before=false", "eval.limit=2", "train.max_steps=1"]) == 0
    return run_dir


def evaluated_tasks(folder) -> list[str]:
    return list(json.loads((folder / "evals" / "eval-001" / "eval.json").read_text())["tasks"])


def test_a_run_folder_without_its_config_is_refused_and_nothing_is_written(
    two_task_run, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    shutil.copytree(two_task_run, run)
    (run / "config.yaml").unlink()
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--adapter", str(run), "eval.limit=1"]) == 2
    assert "run folder without its config.yaml" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and not (run / "evals").exists()


def test_an_adapter_folder_is_scored_on_its_own_tasks(two_task_run, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    overrides = [o for o in run_overrides(tiny_model_dir, out) if not o.startswith("data.tasks")]
    assert main(["eval", "--adapter", str(two_task_run / "adapter"), *overrides, "eval.limit=2"]) == 0
    assert evaluated_tasks(out) == ["piqa", "boolq"]  # not the 9 default commonsense tasks


def test_tasks_the_adapter_never_saw_are_scored_with_a_loud_warning(two_task_run, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(two_task_run, run)
    with caplog.at_level(logging.WARNING, logger="samora"):
        assert main(["eval", "--adapter", str(run), "data.tasks=[piqa, arc_easy]"]) == 0
    assert "trained on ['piqa', 'boolq'] and never saw ['arc_easy']" in caplog.text
    assert evaluated_tasks(run) == ["piqa", "arc_easy"]


def test_a_compare_cells_folder_is_evaluated_like_a_run(two_task_run, tmp_path, caplog):
    cell = tmp_path / "grid" / "lora-seed41"
    shutil.copytree(two_task_run, cell)
    saved = yaml.safe_load((cell / "config.yaml").read_text())
    adapter_config = json.loads((cell / "adapter" / "adapter_config.json").read_text())
    saved["adapter"] = {**saved["adapter"], "tasks": adapter_config["tasks"], "base_model": "x"}  # as a cell saves it
    (cell / "config.yaml").write_text(yaml.safe_dump(saved))
    with caplog.at_level(logging.WARNING, logger="samora"):
        assert main(["eval", "--adapter", str(cell)]) == 0
    assert evaluated_tasks(cell) == ["piqa", "boolq"] and "never saw" not in caplog.text
    assert main(["analyze", str(cell)]) == 0
