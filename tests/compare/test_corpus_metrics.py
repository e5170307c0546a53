"""A task whose primary metric is a corpus metric (CoLA: MCC) is scored by it in the comparison,
per seed on the resampled examples, not by the mean of per-example correctness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samora.compare.spec import compare_specs
from samora.compare.summary import write_comparison
from samora.evaluation.metrics import accuracy, matthews_corrcoef
from samora.run.run_config import load_run_config
from tests.compare.test_summary import budget_plan

N = 120
PRIMARY = {"cola": "mcc", "boolq": "acc"}


def write_glue_cell(folder, agreement, rng, golds):
    """A finished cell whose predictions agree with the gold labels at ``agreement`` and otherwise
    answer 1 (CoLA's majority "acceptable"): high accuracy, low MCC for a poor row."""
    folder.mkdir(parents=True)
    records, preds = [], {}
    for task, gold in golds.items():
        preds[task] = np.where(rng.random(N) < agreement, gold, 1)
        records += [
            {"id": i, "task": task, "gold": int(g), "pred": int(p)} for i, (g, p) in enumerate(zip(gold, preds[task]))
        ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    tasks = {task: {"n": N, "primary_metric": metric} for task, metric in PRIMARY.items()}
    (folder / "results.json").write_text(json.dumps({"tasks": tasks}))
    (folder / "done.json").write_text(json.dumps({"identity": {}, "wall_s": 1.0}))
    return preds


@pytest.fixture
def glue_grid(tmp_path):
    """samora (agrees 70%) and lora (agrees 30%) x seeds 1, 2, and the base model (agrees 10%)."""
    config = load_run_config(
        preset="demo",
        overrides=[
            f"output_dir={tmp_path}",
            "compare.methods=[samora, lora]",
            "compare.seeds=[1, 2]",
            "compare.reference=lora",
            "compare.bootstrap_samples=400",
        ],
    )
    specs, reference, _ = compare_specs(config)
    rng = np.random.default_rng(0)
    golds = {task: (rng.random(N) < 0.7).astype(int) for task in PRIMARY}
    preds = {
        label: [write_glue_cell(tmp_path / "cells" / f"{label}-seed{s}", rate, rng, golds) for s in (1, 2)]
        for label, rate in {"samora": 0.7, "lora": 0.3}.items()
    }
    preds["base"] = [write_glue_cell(tmp_path / "cells" / "base", 0.1, rng, golds)]
    return write_comparison(config, tmp_path, specs, reference, budget_plan(specs)), golds, preds, tmp_path


def test_cola_is_scored_by_mcc_per_seed_and_boolq_by_accuracy(glue_grid):
    comparison, golds, preds, _ = glue_grid
    assert comparison["task_metrics"] == {"cola": "mcc", "boolq": "acc"}
    assert comparison["corpus_metrics"] == {"cola": "mcc"}
    for label, cells in preds.items():
        row = comparison["table"][label]["tasks"]
        mcc = np.mean([matthews_corrcoef(golds["cola"], cell["cola"]) for cell in cells])
        acc = np.mean([accuracy(golds["cola"], cell["cola"]) for cell in cells])
        assert row["cola"]["value"] == pytest.approx(mcc) and abs(mcc - acc) > 0.1
        assert row["boolq"]["value"] == pytest.approx(np.mean([accuracy(golds["boolq"], c["boolq"]) for c in cells]))
        assert row["cola"]["ci95"][0] <= row["cola"]["value"] <= row["cola"]["ci95"][1]


def test_paired_tests_take_the_difference_of_the_rows_mcc_on_the_same_draws(glue_grid):
    comparison, golds, preds, _ = glue_grid
    mcc = {label: [matthews_corrcoef(golds["cola"], cell["cola"]) for cell in cells] for label, cells in preds.items()}
    vs_lora = comparison["paired"]["vs_reference"]["samora"]["tasks"]["cola"]
    assert vs_lora["value"] == pytest.approx(np.mean(np.subtract(mcc["samora"], mcc["lora"])))
    assert vs_lora["ci95"][0] > 0
    vs_base = comparison["paired"]["vs_base"]["lora"]["tasks"]["cola"]  # the base row pairs with every seed
    assert vs_base["value"] == pytest.approx(np.mean(mcc["lora"]) - mcc["base"][0])


def test_the_markdown_and_plot_label_the_mcc_column(glue_grid):
    comparison, _, _, output = glue_grid
    markdown = (output / "comparison.md").read_text()
    assert "(mean score (acc; mcc for cola) over 2 tasks" in comparison["answer"][0]
    assert "## score (acc; mcc for cola) per task and mean (x100, 95% CI" in markdown
    assert "| row | seeds | cola (mcc) | boolq | **mean** |" in markdown
    assert "MCC (Matthews correlation" in markdown and "lies in [-1, 1]" in markdown
    assert (output / "comparison.png").stat().st_size > 1000
