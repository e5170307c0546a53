"""``samora train | eval | analyze | env`` end to end on a tiny model with the real tokenizer and data."""

from __future__ import annotations

import json

import pytest

from samora.cli import main
from tests.helpers import run_overrides, wider_llama


def snapshot_of(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_train_eval_analyze_write_a_complete_run_folder(tiny_model_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--preset", "demo", *run_overrides(tiny_model_dir, run_dir)]) == 0
    for name in (
        "config.yaml",
        "metrics.json",
        "report.md",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "plots/training_loss.png",
        "plots/task_metrics.png",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["tasks"] == ["boolq", "piqa", "arc_easy"] and metrics["train"]["steps"] == 3
    for stage in ("before", "after"):
        assert set(metrics[stage]["tasks"]) == {"boolq", "piqa", "arc_easy"}
        assert all(entry["n"] == 4 for entry in metrics[stage]["tasks"].values())
    report = (run_dir / "report.md").read_text()
    assert "| boolq |" in report and "plots/training_loss.png" in report

    for stage in ("before", "after"):  # per-example records of both evaluations
        records = [json.loads(line) for line in (run_dir / f"samples_{stage}.jsonl").read_text().splitlines()]
        assert len(records) == 12 and {r["task"] for r in records} == {"boolq", "piqa", "arc_easy"}
        piqa = [r["correct"] for r in records if r["task"] == "piqa"]
        assert sum(piqa) / 4 == metrics[stage]["tasks"]["piqa"]["metrics"]["acc"]
    assert "[95% CI]" in report and "majority" in report

    # the run folder alone: its config.yaml gives the tasks, template, limit, model and seed
    assert main(["eval", "--adapter", str(run_dir)]) == 0
    first = run_dir / "evals" / "eval-001"
    evaluated = json.loads((first / "eval.json").read_text())
    assert evaluated["tasks"]["piqa"]["metrics"] == metrics["after"]["tasks"]["piqa"]["metrics"]
    assert evaluated["template"] == metrics["after"]["template"]
    assert (first / "samples.jsonl").read_text() == (run_dir / "samples_after.jsonl").read_text()
    assert "limit: 4" in (first / "config.yaml").read_text()
    assert f"results: {first / 'eval.json'}" in capsys.readouterr().out
    written = snapshot_of(first)
    assert main(["eval", "--adapter", str(run_dir), "data.tasks=[piqa]"]) == 0  # a new folder, never overwritten
    assert list(json.loads((run_dir / "evals" / "eval-002" / "eval.json").read_text())["tasks"]) == ["piqa"]
    assert snapshot_of(first) == written

    assert main(["analyze", str(run_dir)]) == 0  # the run's analysis/ is kept; this one is analysis-002
    assert (run_dir / "analysis-002" / "analysis.json").is_file()
    assert (run_dir / "analysis" / "analysis.json").is_file()
    assert main(["env"]) == 0
    assert "transformers" in capsys.readouterr().out


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["adapter.method=qlora"], "adapter.method must be one of"),
        (["data.tasks=[boolq, nosuchtask]"], "nosuchtask"),
        (["train.learning_rat=1e-4"], "train.learning_rat"),
    ],
)
def test_bad_input_is_a_clear_error_before_any_work(overrides, message, tiny_model_dir, tmp_path, capsys):
    code = main(["train", *run_overrides(tiny_model_dir, tmp_path / "run"), *overrides])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run" / "adapter").exists()


def test_unknown_model_path_names_the_key(tmp_path, capsys):
    code = main(["train", *run_overrides(tmp_path / "missing-model", tmp_path / "run")])
    assert code == 2 and "model.name" in capsys.readouterr().err


def test_adapter_from_another_base_is_refused(tiny_model_dir, tmp_path, capsys):
    import samora

    other = wider_llama()
    samora.save_adapter(samora.get_model(other, samora.SAMoRAConfig(tasks=["boolq"])), tmp_path / "foreign")
    code = main(["eval", "--adapter", str(tmp_path / "foreign"), *run_overrides(tiny_model_dir, tmp_path / "eval")])
    assert code == 1 and "do not match this model" in capsys.readouterr().err
