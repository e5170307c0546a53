"""``comparison.png``: a comparison's rows at a glance, readable for a handful of rows or a dozen.

Three panels share one row per table row (top to bottom in the table's order):

1. the mean over tasks with its 95% interval;
2. the paired difference against the reference row with its 95% interval, a filled marker where it
   stays significant after Holm's correction and a hollow one where it does not;
3. every task's value as a heatmap, the value written in each cell (intervals are in ``comparison.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from samora.analysis.plots import new_figure
from samora.compare.report import metric_phrase, task_label, unit


def plot_comparison(comparison: dict[str, Any], path: Path) -> Path:
    """Draw the three panels (module docstring) of ``comparison`` into ``path``."""
    labels = list(comparison["table"])
    height = 1.6 + 0.32 * len(labels)
    figure = new_figure(figsize=(15, height))
    means, differences, tasks = figure.subplots(1, 3, sharey=True, gridspec_kw={"width_ratios": [1, 1, 2.4]})
    rows = np.arange(len(labels))
    _plot_means(means, comparison, labels, rows)
    _plot_differences(differences, comparison, labels, rows)
    _plot_tasks(tasks, comparison, labels, rows)
    means.set_yticks(rows, labels, fontsize=8)
    means.set_ylim(len(labels) - 0.5, -0.5)  # the table's first row on top (set last: imshow resets it)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def _errors(intervals: list[dict[str, Any]]) -> np.ndarray:
    """(2, rows) distances from each value down and up to its 95% interval's ends, in points."""
    values = np.array([i["value"] for i in intervals])
    low, high = np.array([i["ci95"] for i in intervals]).T
    return 100 * np.clip([values - low, high - values], 0, None)


def _plot_means(axis, comparison: dict[str, Any], labels: list[str], rows: np.ndarray) -> None:
    intervals = [comparison["table"][label]["mean"] for label in labels]
    values = 100 * np.array([i["value"] for i in intervals])
    axis.errorbar(values, rows, xerr=_errors(intervals), fmt="o", color="black", capsize=3, markersize=4)
    axis.set_xlabel(
        f"mean {metric_phrase(comparison)} over {len(comparison['tasks'])} tasks ({unit(comparison)}), 95% CI",
        fontsize=8,
        wrap=True,
    )
    axis.grid(axis="x", alpha=0.3)


def _plot_differences(axis, comparison: dict[str, Any], labels: list[str], rows: np.ndarray) -> None:
    paired = comparison["paired"]
    tests = paired["vs_reference"]
    axis.axvline(0, color="grey", linewidth=1)
    for row, label in zip(rows, labels):
        test = tests.get(label)
        if test is None:  # the reference itself, the base model, or no common seed yet
            continue
        significant = test["significant_holm"]
        axis.errorbar(
            100 * test["value"],
            row,
            xerr=_errors([test]),
            fmt="o",
            color="tab:red" if significant else "tab:blue",
            markerfacecolor=None if significant else "white",
            capsize=3,
            markersize=5,
        )
    axis.set_xlabel(
        f"minus {paired['reference']} (points), 95% CI\nfilled: significant after Holm "
        f"({paired['family_size']} distinct tests)",
        fontsize=8,
    )
    axis.grid(axis="x", alpha=0.3)


def _plot_tasks(axis, comparison: dict[str, Any], labels: list[str], rows: np.ndarray) -> None:
    names = comparison["tasks"]
    values = 100 * np.array(
        [[comparison["table"][label]["tasks"][task]["value"] for task in names] for label in labels]
    )
    image = axis.imshow(values, aspect="auto", cmap="viridis", extent=(-0.5, len(names) - 0.5, rows[-1] + 0.5, -0.5))
    bright = image.norm(values) > 0.6  # dark text on the light end of the colour map
    for (row, column), value in np.ndenumerate(values):
        color = "black" if bright[row, column] else "white"
        axis.text(column, row, f"{value:.1f}", ha="center", va="center", fontsize=7, color=color)
    axis.set_xticks(
        np.arange(len(names)), [task_label(comparison, t) for t in names], rotation=30, ha="right", fontsize=8
    )
    axis.figure.colorbar(
        image,
        ax=axis,
        label=f"{comparison['metric'] if unit(comparison) == '%' else 'score'} ({unit(comparison)})",
        fraction=0.04,
    )
