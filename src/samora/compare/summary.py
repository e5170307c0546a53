"""The comparison of a finished grid: table with intervals, paired tests, ``comparison.{json,md,png}``.

Each method's value per task is its mean per-example correctness (``compare.metric``) over examples
and seeds; its interval and every paired difference come from
:func:`samora.evaluation.statistics.bootstrap_grid` (examples and seeds resampled, seeded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from samora.compare.spec import MethodSpec, parse_method_spec
from samora.evaluation.runner import read_samples
from samora.evaluation.statistics import bootstrap_grid, paired_test
from samora.pipeline import _write_atomic
from samora.run_config import RunConfig

BASE = "base"


def write_comparison(config: RunConfig, output: Path, specs: list[MethodSpec], reference: MethodSpec,
                     plan: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Assemble the finished cells into ``comparison.json``, ``comparison.md`` and ``comparison.png``."""
    from samora.compare.grid import cell_name
    from samora.compare.report import answer_lines, plot_comparison, write_markdown

    section = config.compare
    rows = {spec.label: [output / "cells" / cell_name(spec, seed) for seed in section.seeds] for spec in specs}
    if section.baseline:
        rows[BASE] = [output / "cells" / "base"]
    correct = {label: _correctness(cells, section.metric) for label, cells in rows.items()}
    _check_same_examples(correct)
    arrays = {label: {task: values for task, (_, values) in tasks.items()} for label, tasks in correct.items()}
    samples, seed = section.bootstrap_samples, config.train.seed
    table = {}
    for label, values in arrays.items():
        grid = bootstrap_grid(values, samples=samples, seed=seed)
        table[label] = {"tasks": grid["tasks"], "mean": grid["mean"]}
    paired = {"reference": reference.label, "vs_reference": {}, "vs_base": {}, "vs_also": {}}
    also = [parse_method_spec(text).label for text in section.also_against]
    for spec in specs:
        if spec != reference:
            paired["vs_reference"][spec.label] = paired_test(arrays[spec.label], arrays[reference.label],
                                                             samples=samples, seed=seed)
        for other in also:
            if other not in (spec.label, reference.label):
                paired["vs_also"].setdefault(other, {})[spec.label] = paired_test(
                    arrays[spec.label], arrays[other], samples=samples, seed=seed)
        if section.baseline:
            paired["vs_base"][spec.label] = paired_test(arrays[spec.label], arrays[BASE], samples=samples, seed=seed)
    first = next(iter(correct.values()))
    comparison = {
        "metric": section.metric, "tasks": list(first), "examples_per_task": {t: v.shape[1] for t, (_, v) in first.items()},
        "seeds": section.seeds, "reference": reference.label, "bootstrap_samples": samples,
        "budget": next((label for label, p in plan.items() if p["budget_source"]), reference.label),
        "table": table, "paired": paired, "parameters": plan,
        "cells": {label: [_cell_record(cell) for cell in cells] for label, cells in rows.items()},
        "label_bias": _label_bias(rows),
        "settings": {"model": config.model.name, "steps": config.train.max_steps, "epochs": config.train.epochs,
                     "learning_rate": config.train.learning_rate, "batch_size": config.train.batch_size,
                     "protocol": config.eval.protocol, "template": config.data.template,
                     "eval_limit": config.eval.limit, "data_seed": config.train.seed},
    }
    comparison["answer"] = answer_lines(comparison)
    _write_atomic(output / "comparison.json", json.dumps(comparison, indent=2, default=str))
    plot_comparison(comparison, output / "comparison.png")
    write_markdown(comparison, output / "comparison.md")
    print("\n".join(f"[samora] {line}" for line in comparison["answer"]), flush=True)
    print(f"[samora] comparison: {output / 'comparison.md'}", flush=True)
    return comparison


def _correctness(cells: list[Path], metric: str) -> dict[str, tuple[list, np.ndarray]]:
    """task -> (example ids, (seeds, examples) 0/1 array) from the cells' ``samples.jsonl``."""
    prediction = "pred_norm" if metric == "acc_norm" else "pred"
    per_cell = []
    for cell in cells:
        by_task: dict[str, list[dict]] = {}
        for record in read_samples(cell / "samples.jsonl"):
            by_task.setdefault(record["task"], []).append(record)
        per_cell.append(by_task)
    tasks = {}
    for task in per_cell[0]:
        ids = [r["id"] for r in per_cell[0][task]]
        rows = []
        for cell, by_task in zip(cells, per_cell):
            if [r["id"] for r in by_task.get(task, [])] != ids:
                raise ValueError(f"{cell} was evaluated on other {task} examples than {cells[0]}; every cell of "
                                 "a comparison must see the same examples (same eval.limit, train.seed, data)")
            rows.append([float(r[prediction] == r["gold"]) for r in by_task[task]])
        tasks[task] = (ids, np.array(rows))
    return tasks


def _check_same_examples(correct: dict[str, dict[str, tuple[list, np.ndarray]]]) -> None:
    (first_label, first), *others = correct.items()
    for label, tasks in others:
        for task in set(first) | set(tasks):
            if task not in tasks or task not in first or tasks[task][0] != first[task][0]:
                raise ValueError(f"{label} and {first_label} were evaluated on different {task} examples; a "
                                 "paired comparison needs the same examples in every cell")


def _cell_record(cell: Path) -> dict[str, Any]:
    marker = json.loads((cell / "done.json").read_text())
    record = {"cell": cell.name, "wall_s": marker["wall_s"]}
    info = cell / "cell.json"
    if info.is_file():
        data = json.loads(info.read_text())
        record.update(seed=data["seed"], trainable_parameters=data["parameters"]["matched"],
                      train_wall_s=data["train_wall_s"], eval_wall_s=data["eval_wall_s"],
                      train_loss=data["train"]["train_loss"], steps=data["train"]["steps"])
    return record


def _label_bias(rows: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """Cells whose most frequent predicted choice is far more frequent than any gold choice
    (share of predictions >= the majority gold share + 0.3): a label bias, not knowledge."""
    flagged = []
    for label, cells in rows.items():
        for cell in cells:
            results = json.loads((cell / "results.json").read_text())
            for task, entry in results["tasks"].items():
                distribution = entry.get("label_distribution")
                if not distribution:
                    continue
                share = max(distribution["pred"].values()) / entry["n"]
                if share >= entry["majority_baseline"] + 0.3:
                    flagged.append({"row": label, "cell": cell.name, "task": task, "top_pred_share": share,
                                    "majority_gold_share": entry["majority_baseline"]})
    return flagged
