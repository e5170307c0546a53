"""The comparison of a finished grid: table with intervals, paired tests, ``comparison.{json,md,png}``.

Each method's value per task is its mean per-example correctness (``compare.metric``) over examples
and seeds, or for a task whose primary metric is a corpus metric (``mcc``, ``f1``: GLUE's CoLA, by
:data:`samora.evaluation.statistics.CORPUS_METRICS`) that metric of each seed's predictions averaged
over seeds; its interval and every paired difference come from
:func:`samora.evaluation.statistics.bootstrap_grid` (examples and seeds resampled, seeded).

A task's metric is read from its cells' ``results.json`` (``primary_metric``, which the evaluation
recorded beside the metrics it computed), not from the task registry: the comparison then scores a
task by the metric its own cells reported, whatever the registry holds when it is summarised, and
needs no user's task registered. A results file without that key (written before samora recorded
it) scores the task by the per-example mean, as then.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from samora.compare.report import answer_lines, paired_test_groups, write_markdown
from samora.compare.spec import MethodSpec, parse_method_spec
from samora.evaluation.statistics import (
    CONFIDENCE,
    CORPUS_METRICS,
    CorpusMetric,
    bootstrap_grid,
    holm_adjusted,
    paired_test,
)
from samora.evaluation.suite import read_samples
from samora.evaluation.text_scoring import example_metric, example_score
from samora.files import write_text_atomic
from samora.run.run_config import ConfigError, RunConfig

logger = logging.getLogger(__name__)

BASE = "base"
LABEL_BIAS_EXCESS = 0.3  # a choice predicted this much more often than it is gold is a label bias


def write_comparison(
    config: RunConfig, output: Path, specs: list[MethodSpec], reference: MethodSpec, plan: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Assemble the finished cells into ``comparison.json``, ``comparison.md`` and ``comparison.png``.

    A grid run in parts is summarised as far as it got: a row holds its finished seeds, a row with
    none is listed under ``pending`` only, and a paired test uses the seeds both rows finished.
    """
    from samora.compare.plot import plot_comparison

    section = config.compare
    rows, pending = _finished_rows(output, specs, section.seeds)
    if section.baseline and _is_finished(output / "cells" / BASE):
        rows[BASE] = {None: output / "cells" / BASE}
    if not rows:
        raise ConfigError(f"{output} has no finished cell yet: nothing to compare")
    correct = {label: _task_scores(list(cells.values()), section.metric) for label, cells in rows.items()}
    _check_same_examples(correct)
    arrays = {label: {task: values for task, (_, values) in tasks.items()} for label, tasks in correct.items()}
    samples, seed = section.bootstrap_samples, config.train.seed
    table = _score_table(rows, arrays, samples, seed)
    also = [parse_method_spec(text).label for text in section.also_against]
    tests = _paired_tests([spec.label for spec in specs], reference.label, also, rows, arrays, samples, seed)
    first = next(iter(correct.values()))
    comparison = {
        "metric": section.metric,
        "task_metrics": _task_metrics(next(iter(next(iter(rows.values())).values())), section.metric),
        "corpus_metrics": {task: v.metric for task, (_, v) in first.items() if isinstance(v, CorpusMetric)},
        "tasks": list(first),
        "examples_per_task": {t: v.shape[1] for t, (_, v) in first.items()},
        "seeds": section.seeds,
        "reference": reference.label,
        "bootstrap_samples": samples,
        "budget": next((label for label, p in plan.items() if p["budget_source"]), reference.label),
        "match_budget": section.match_budget,
        "table": table,
        "paired": tests,
        "parameters": plan,
        "pending": pending,
        "cells": {label: [_cell_record(cell) for cell in cells.values()] for label, cells in rows.items()},
        "label_bias": _label_bias({label: list(cells.values()) for label, cells in rows.items()}),
        "settings": _run_settings(config),
    }
    comparison["answer"] = answer_lines(comparison)
    write_text_atomic(output / "comparison.json", json.dumps(comparison, indent=2, default=str))
    plot_comparison(comparison, output / "comparison.png")
    write_markdown(comparison, output / "comparison.md")
    print("\n".join(f"[samora] {line}" for line in comparison["answer"]), flush=True)  # the result, on stdout
    logger.info("comparison: %s", output / "comparison.md")
    return comparison


def _score_table(rows: dict, arrays: dict, samples: int, seed: int) -> dict[str, dict[str, Any]]:
    """label -> its per-task and mean intervals (examples and seeds bootstrapped) and its seeds."""
    table = {}
    for label, values in arrays.items():
        grid = bootstrap_grid(values, samples=samples, seed=seed)
        table[label] = {
            "tasks": grid["tasks"],
            "mean": grid["mean"],
            "seeds": [s for s in rows[label] if s is not None],
        }
    return table


def _run_settings(config: RunConfig) -> dict[str, Any]:
    """The settings every cell shared, which the report's scope lines quote."""
    return {
        "model": config.model.name,
        "steps": config.train.max_steps,
        "epochs": config.train.num_train_epochs,
        "learning_rate": config.train.learning_rate,
        "batch_size": config.train.per_device_train_batch_size,
        "protocol": config.eval.protocol,
        "template": config.data.template,
        "eval_limit": config.eval.limit,
        "data_seed": config.train.seed,
    }


def _paired_tests(
    labels: list[str], reference: str, also: list[str], rows: dict, arrays: dict, samples: int, seed: int
) -> dict[str, Any]:
    """Every finished row against the reference, each ``also`` row and the base model, each test
    on the seeds both rows finished (listed in the test's ``seeds``)."""

    def paired(label: str, other: str) -> dict[str, Any]:
        mine, theirs = _on_common_seeds(rows, arrays, label, other)
        return {**paired_test(mine, theirs, samples=samples, seed=seed), "seeds": _common_seeds(rows, label, other)}

    tests = {"reference": reference, "vs_reference": {}, "vs_base": {}, "vs_also": {}}
    for label in (label for label in labels if label in rows):
        if label != reference and _common_seeds(rows, label, reference):
            tests["vs_reference"][label] = paired(label, reference)
        for other in also:
            if other not in (label, reference) and _common_seeds(rows, label, other):
                tests["vs_also"].setdefault(other, {})[label] = paired(label, other)
        if BASE in rows:
            tests["vs_base"][label] = paired(label, BASE)
    return _adjust_for_the_family(tests)


def _adjust_for_the_family(tests: dict[str, Any]) -> dict[str, Any]:
    """Add each test's Holm-adjusted ``p_holm`` and ``significant_holm`` (p_holm < 0.05), the
    family being the distinct tests of the comparison (``family_size`` of them): a grid of many rows
    makes some uncorrected p < 0.05 by chance alone. A pair tested both ways (A - B against the
    reference, B - A against an ``also_against`` row) is one test: its two directions have the same
    p-value (the same draws, the differences negated) and get the same ``p_holm``."""
    pairs: dict[frozenset[str], list[dict[str, Any]]] = {}
    for group, other in paired_test_groups(tests):
        for label, test in group.items():
            pairs.setdefault(frozenset((label, other)), []).append(test)
    distinct = list(pairs.values())
    for twins, adjusted in zip(distinct, holm_adjusted([twins[0]["p_value"] for twins in distinct]), strict=True):
        for test in twins:
            test["p_holm"], test["significant_holm"] = adjusted, adjusted < 1 - CONFIDENCE
    tests["family_size"] = len(distinct)
    return tests


def _is_finished(cell: Path) -> bool:
    return (cell / "done.json").is_file()


def _finished_rows(output: Path, specs: list[MethodSpec], seeds: list[int]) -> tuple[dict, list[str]]:
    """label -> {seed: finished cell folder} (rows without a finished cell left out), and the
    names of the cells not finished yet, in the order the grid runs them (seed by seed)."""
    rows = {}
    for spec in specs:
        cells = {seed: output / "cells" / spec.cell_name(seed) for seed in seeds}
        finished = {seed: cell for seed, cell in cells.items() if _is_finished(cell)}
        if finished:
            rows[spec.label] = finished
    pending = [
        spec.cell_name(seed)
        for seed in seeds
        for spec in specs
        if not _is_finished(output / "cells" / spec.cell_name(seed))
    ]
    return rows, pending


def _common_seeds(rows: dict[str, dict], label: str, other: str) -> list[int]:
    """The seeds both rows finished (the base row, seed None, pairs with every seed)."""
    if other == BASE:
        return list(rows[label])
    return [seed for seed in rows[label] if seed in rows.get(other, {})]


def _on_common_seeds(rows, arrays, label: str, other: str) -> tuple[dict, dict]:
    """Both rows' task -> (seeds, examples) arrays restricted to their common seeds, same order."""
    seeds = _common_seeds(rows, label, other)
    pick = {name: [list(rows[name]).index(seed) for seed in seeds] for name in (label, other) if name != BASE}
    mine = {task: _seed_rows(values, pick[label]) for task, values in arrays[label].items()}
    theirs = arrays[other]
    if other != BASE:
        theirs = {task: _seed_rows(values, pick[other]) for task, values in theirs.items()}
    return mine, theirs


def _task_scores(cells: list[Path], metric: str) -> dict[str, tuple[list, Any]]:
    """task -> (example ids, what the bootstrap resamples) from the cells' ``samples.jsonl``: for a
    task scored by a corpus metric (:func:`_corpus_metrics` of the first cell) a
    :class:`CorpusMetric` of the gold labels and each cell's predictions ``pred``; else the (seeds,
    examples) array of per-example scores under ``metric``, 0/1 correctness of a choice task or a
    generated task's score (:func:`samora.evaluation.text_scoring.example_score`)."""
    per_cell = [_records_by_task(cell) for cell in cells]
    tasks, corpus = {}, _corpus_metrics(cells[0], per_cell[0])
    for task in per_cell[0]:
        ids = [r["id"] for r in per_cell[0][task]]
        for cell, by_task in zip(cells, per_cell):
            if [r["id"] for r in by_task.get(task, [])] != ids:
                raise ValueError(
                    f"{cell} was evaluated on other {task} examples than {cells[0]}; every cell of "
                    "a comparison must see the same examples (same eval.limit, train.seed, data)"
                )
        records = [by_task[task] for by_task in per_cell]
        if task in corpus:
            tasks[task] = (ids, _corpus_scores(task, corpus[task], records, cells))
        else:
            tasks[task] = (ids, np.array([[example_score(r, metric) for r in rows] for rows in records]))
    return tasks


def _records_by_task(cell: Path) -> dict[str, list[dict]]:
    by_task: dict[str, list[dict]] = {}
    for record in read_samples(cell / "samples.jsonl"):
        by_task.setdefault(record["task"], []).append(record)
    return by_task


def _corpus_scores(task: str, metric: str, records: list[list[dict]], cells: list[Path]) -> CorpusMetric:
    """The :class:`CorpusMetric` of a task's gold labels and each cell's predictions (one cell a seed):
    ``pred``, whatever ``compare.metric``, as the evaluation computes a task's MCC/F1 (``acc_norm``
    is a per-example accuracy of the length-normalised choice, not a prediction for the corpus metrics)."""
    golds = [r["gold"] for r in records[0]]
    for cell, rows in zip(cells, records):
        if [r["gold"] for r in rows] != golds:
            raise ValueError(
                f"{cell} holds other {task} gold labels than {cells[0]} for the same examples; every cell "
                "of a comparison must be evaluated on the same data"
            )
    return CorpusMetric(metric, golds, np.array([[r["pred"] for r in rows] for rows in records]))


def _corpus_metrics(cell: Path, by_task: dict[str, list[dict]]) -> dict[str, str]:
    """task -> its corpus metric, for the choice tasks (records without per-example ``metrics``) whose
    ``results.json`` ``primary_metric`` is one (:data:`CORPUS_METRICS`: ``mcc`` for CoLA). A generated
    task's ``f1`` is a per-example text score, averaged like accuracy, not the corpus F1."""
    recorded = json.loads((cell / "results.json").read_text())["tasks"]
    return {
        task: recorded[task]["primary_metric"]
        for task, records in by_task.items()
        if recorded.get(task, {}).get("primary_metric") in CORPUS_METRICS and "metrics" not in records[0]
    }


def _task_metrics(cell: Path, metric: str) -> dict[str, str]:
    """task -> the metric the comparison scores it by: its corpus metric (:func:`_corpus_metrics`),
    else ``metric`` per example (a generated task without it: its own primary metric)."""
    by_task = _records_by_task(cell)
    corpus = _corpus_metrics(cell, by_task)
    return {task: corpus.get(task) or example_metric(records[0], metric) for task, records in by_task.items()}


def _seed_rows(values: Any, indices: list[int]) -> Any:
    """A row's task values under the seeds at ``indices``, in that order."""
    return values.seeds(indices) if isinstance(values, CorpusMetric) else values[indices]


def _check_same_examples(correct: dict[str, dict[str, tuple[list, Any]]]) -> None:
    """Every row holds the same tasks, examples and task metrics (a paired test needs them)."""
    (first_label, first), *others = correct.items()
    for label, tasks in others:
        for task in set(first) | set(tasks):
            if task not in tasks or task not in first or tasks[task][0] != first[task][0]:
                raise ValueError(
                    f"{label} and {first_label} were evaluated on different {task} examples; a "
                    "paired comparison needs the same examples in every cell"
                )
            scored = [getattr(values, "metric", "a per-example mean") for _, values in (first[task], tasks[task])]
            if scored[0] != scored[1]:
                raise ValueError(
                    f"{first_label} and {label} score {task} by different metrics ({scored[0]} vs {scored[1]}: "
                    "their results.json record another primary_metric); evaluate every cell with the same samora"
                )


def _cell_record(cell: Path) -> dict[str, Any]:
    marker = json.loads((cell / "done.json").read_text())
    record = {"cell": cell.name, "wall_s": marker["wall_s"]}
    info = cell / "cell.json"
    if info.is_file():
        data = json.loads(info.read_text())
        record.update(
            seed=data["seed"],
            trainable_parameters=data["parameters"]["matched"],
            train_wall_s=data["train_wall_s"],
            eval_wall_s=data["eval_wall_s"],
            train_loss=data["train"]["train_loss"],
            steps=data["train"]["steps"],
        )
    return record


def _label_bias(rows: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """Cells in which one choice is predicted far more often than it is the gold answer: a label
    bias, not knowledge. A task is flagged when, for some choice c,

        count_pred(c) / n - count_gold(c) / n >= LABEL_BIAS_EXCESS   (0.3),

    so a minority answer predicted most of the time is caught too (boolq with 40% gold "no"
    answered "no" 88% of the time), not only one beyond the majority gold share."""
    flagged = []
    for label, cells in rows.items():
        for cell in cells:
            results = json.loads((cell / "results.json").read_text())
            for task, entry in results["tasks"].items():
                distribution = entry.get("label_distribution")
                if not distribution:
                    continue
                n, golds = entry["n"], distribution["gold"]
                excess = {c: (count - golds.get(c, 0)) / n for c, count in distribution["pred"].items()}
                choice = max(excess, key=excess.get)
                if excess[choice] >= LABEL_BIAS_EXCESS:
                    flagged.append(
                        {
                            "row": label,
                            "cell": cell.name,
                            "task": task,
                            "choice": int(choice),
                            "pred_share": distribution["pred"][choice] / n,
                            "gold_share": golds.get(choice, 0) / n,
                        }
                    )
    return flagged
