"""samora compare on a mix of choice tasks and generate_until tasks: paired tests on per-example scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samora.compare.spec import compare_specs
from samora.compare.summary import write_comparison
from samora.run.run_config import load_run_config
from tests.compare.test_summary import budget_plan

N = 150


def write_mixed_cell(folder, rate, seed, rng):
    """A finished cell: boolq choice records and an own generate_until task's records (token F1 first)."""
    folder.mkdir(parents=True)
    golds = rng.integers(0, 2, N)
    preds = np.where(rng.random(N) < rate, golds, 1 - golds)
    records = [
        {"id": i, "task": "boolq", "gold": int(g), "pred": int(p)} for i, (g, p) in enumerate(zip(golds, preds))
    ]
    f1 = np.clip(rng.normal(rate, 0.2, N), 0, 1)
    records += [
        {
            "id": i,
            "task": "answers",
            "gold": "x",
            "pred": "y",
            "metrics": {"f1": float(s), "exact_match": float(s == 1)},
        }
        for i, s in enumerate(f1)
    ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "results.json").write_text(json.dumps({"tasks": {"boolq": {"n": N}, "answers": {"n": N}}}))
    (folder / "done.json").write_text(json.dumps({"identity": {}, "wall_s": 1.0}))
    cell = {"seed": seed, "parameters": {"matched": 100}, "train_wall_s": 1, "eval_wall_s": 1}
    (folder / "cell.json").write_text(json.dumps({**cell, "train": {"train_loss": 1.0, "steps": 2}}))
    return records


def test_generated_tasks_enter_the_table_and_paired_tests_with_their_primary_metric(tmp_path):
    config = load_run_config(
        preset="demo",
        overrides=[
            f"output_dir={tmp_path}",
            "compare.methods=[samora, lora]",
            "compare.seeds=[1]",
            "compare.reference=lora",
            "compare.baseline=false",
            "compare.bootstrap_samples=500",
        ],
    )
    specs, reference, _ = compare_specs(config)
    rng = np.random.default_rng(0)
    written = {
        slug: write_mixed_cell(tmp_path / "cells" / f"{slug}-seed1", rate, 1, rng)
        for slug, rate in {"samora": 0.8, "lora": 0.45}.items()
    }
    comparison = write_comparison(config, tmp_path, specs, reference, budget_plan(specs))

    f1 = [r["metrics"]["f1"] for r in written["samora"] if r["task"] == "answers"]
    assert comparison["table"]["samora"]["tasks"]["answers"]["value"] == pytest.approx(np.mean(f1))
    boolq = [r["pred"] == r["gold"] for r in written["samora"] if r["task"] == "boolq"]
    assert comparison["table"]["samora"]["tasks"]["boolq"]["value"] == pytest.approx(np.mean(boolq))
    test = comparison["paired"]["vs_reference"]["samora"]
    assert test["significant"] and test["tasks"]["answers"]["ci95"][0] > 0.2
    assert comparison["task_metrics"] == {"boolq": "acc", "answers": "f1"}
    assert "(mean score (acc; f1 for answers) over 2 tasks" in (tmp_path / "comparison.md").read_text()
