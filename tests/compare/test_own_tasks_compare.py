"""Users' tasks through every command on a tiny model: ``samora compare`` on the three task files of
``examples/own-tasks`` (the CLI, no Python written), a grid mixing built-in and own tasks, and train ->
eval (data changed since: warned) -> analyze -> export per own task."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from samora.cli import main
from samora.data.tasks import registered_tasks, unregister_task
from tests.helpers import ROOT, run_overrides, subprocess_environment

EXAMPLES = ROOT / "examples" / "own-tasks"


@pytest.fixture(autouse=True)
def forget_registered_tasks():
    yield
    for name in registered_tasks():
        unregister_task(name)


def tiny_compare(model_dir, output, methods="[samora, lora, hydralora]"):
    """Overrides of examples/own-tasks/compare.yaml for a tiny model: 1 step, 4 examples per task."""
    return [
        f"model.name={model_dir}",
        "data.per_task_cap=4",
        "data.max_length=96",
        "train.max_steps=1",
        "train.per_device_train_batch_size=4",
        "eval.limit=4",
        "eval.batch_size=8",
        "compare.bootstrap_samples=100",
        f"compare.methods={methods}",
        f"output_dir={output}",
    ]


def test_samora_compare_runs_on_the_three_example_task_files_from_the_command_line(tiny_model_dir, tmp_path):
    output = tmp_path / "grid"
    command = [sys.executable, "-m", "samora.cli", "compare", "examples/own-tasks/compare.yaml"]
    finished = subprocess.run(
        [*command, *tiny_compare(tiny_model_dir, output)],
        cwd=ROOT,
        env=subprocess_environment(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    comparison = json.loads((output / "comparison.json").read_text())
    assert comparison["tasks"] == ["copa_own", "sciq_answer", "science", "color"]
    for row in ("samora", "lora", "hydralora", "base"):
        for task in comparison["tasks"]:
            assert len(comparison["table"][row]["tasks"][task]["ci95"]) == 2
    assert set(comparison["paired"]["vs_reference"]) == {"samora", "hydralora"}  # each against LoRA
    assert set(comparison["paired"]["vs_base"]) == {"samora", "lora", "hydralora"}
    report = (output / "comparison.md").read_text()
    assert "copa_own" in report and "each task's own prompts" in report and "`None`" not in report
    assert comparison["task_metrics"]["copa_own"] == "acc" and comparison["task_metrics"]["color"] == "exact_match"


def test_a_grid_mixes_built_in_and_own_tasks_in_one_table(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    output = tmp_path / "grid"
    overrides = tiny_compare(tiny_model_dir, output, "[samora, lora]")
    assert (
        main(
            [
                "compare",
                "examples/own-tasks/compare.yaml",
                *overrides,
                "data.tasks=[boolq, examples/own-tasks/copa.yaml]",
            ]
        )
        == 0
    )
    comparison = json.loads((output / "comparison.json").read_text())
    assert comparison["tasks"] == ["boolq", "copa_own"] and comparison["examples_per_task"]["copa_own"] == 4
    assert set(comparison["table"]) == {"samora", "lora", "base"}
    recorded = json.loads((output / "tasks.json").read_text())
    assert recorded["copa_own"]["id"] == 1 and recorded["copa_own"]["definition"]["dataset_path"] == "csv"


def test_own_tasks_train_evaluate_analyse_and_export_per_task(tiny_model_dir, tmp_path, caplog):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in ("copa.yaml", "copa_train.csv", "copa_test.csv"):
        shutil.copy(EXAMPLES / name, tasks / name)
    run_dir = tmp_path / "run"
    own = [f"data.tasks=[{tasks / 'copa.yaml'}, boolq]", "adapter.method=moelora", "eval.before=false"]
    assert main(["train", *run_overrides(tiny_model_dir, run_dir), *own]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["tasks"] == ["copa_own", "boolq"] and metrics["after"]["tasks"]["copa_own"]["n"] == 4
    assert json.loads((run_dir / "tasks.json").read_text())["copa_own"]["file"] == str(tasks / "copa.yaml")
    gates = json.loads((run_dir / "analysis" / "analysis.json").read_text())
    assert gates["tasks"] == ["copa_own", "boolq"]

    with (tasks / "copa_test.csv").open("a", encoding="utf-8") as handle:
        handle.write("It rained.,effect,The grass got wet.,The sun shone.,0\n")
    assert main(["eval", "--adapter", str(run_dir)]) == 0
    assert "task 'copa_own'" in caplog.text and "changed since the run" in caplog.text
    evaluated = json.loads((run_dir / "evals" / "eval-001" / "eval.json").read_text())
    assert evaluated["tasks"]["copa_own"]["routed_task_id"] == 0

    assert main(["analyze", str(run_dir)]) == 0
    assert json.loads((run_dir / "analysis-002" / "analysis.json").read_text())["tasks"] == ["copa_own", "boolq"]
    assert main(["export", str(run_dir), "--to", "peft", str(tmp_path / "peft")]) == 0
    assert (tmp_path / "peft" / "copa_own" / "adapter_config.json").is_file()
