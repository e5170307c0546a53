"""The plain-text results table that ``samora train`` and ``samora eval`` print (:func:`format_table`).

One row per task: split, example count, each metric in % with its 95% interval, the chance level,
the majority-class baseline, the gold / predicted label counts per choice index and the template;
then one row per benchmark average with its interval. Columns are padded to their widest cell.
"""

from __future__ import annotations

from typing import Any


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table: one row per task (metrics in % with their 95% intervals, chance level,
    majority-class baseline, gold / predicted label counts per choice index), then the benchmark
    averages with their intervals."""
    model = results["model"]
    adapter = results.get("adapter")
    title = (
        f"protocol: {results['protocol']}  model: {model['name_or_path'] or model['class']}"
        f"  adapter: {adapter['method'] if adapter else 'none'}"
    )
    metric_names = sorted(
        {m for entry in results["tasks"].values() for m in entry.get("metrics", {})}, key=_metric_order
    )
    header = [
        "task",
        "split",
        "n",
        *[f"{m} [95% CI]" for m in metric_names],
        "chance",
        "majority",
        "labels gold / pred",
        "template",
    ]
    rows = [_task_row(name, entry, metric_names) for name, entry in results["tasks"].items()]
    rows += [_average_row(bench, average, metric_names) for bench, average in results.get("average", {}).items()]
    return "\n".join([title, *_aligned([header, *rows])])


def _task_row(name: str, entry: dict[str, Any], metric_names: list[str]) -> list[str]:
    if "skipped" in entry:
        return [name, entry.get("split", ""), "-", *["-"] * (len(metric_names) + 3), "skipped: no data"]
    n = str(entry["n"]) + (f" ({entry['n_unparsed']} unparsed)" if entry.get("n_unparsed") else "")
    return [
        name,
        entry["split"],
        n,
        *[_with_interval(entry, m) for m in metric_names],
        _percent(entry.get("chance")),
        _percent(entry.get("majority_baseline")),
        _label_counts(entry.get("label_distribution")),
        entry["template"]["name"],
    ]


def _average_row(benchmark: str, average: dict[str, Any], metric_names: list[str]) -> list[str]:
    ci = average.get("ci95")
    shown = f"{100 * average['value']:.2f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
    return [
        f"average ({benchmark})",
        "",
        str(average["n_tasks"]) + " tasks",
        *["" for _ in metric_names],
        "",
        "",
        "",
        f"{shown} mean primary",
    ]


def _aligned(rows: list[list[str]]) -> list[str]:
    """``rows`` (the header first) as lines of left-aligned cells, a dashed rule under the header."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [
        " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [rows[0], ["-" * w for w in widths], *rows[1:]]
    ]


def _with_interval(entry: dict[str, Any], metric: str) -> str:
    if metric not in entry["metrics"]:
        return ""
    shown = f"{100 * entry['metrics'][metric]:.2f}"
    ci = (entry.get("statistics") or {}).get(metric, {}).get("ci95")
    return shown + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _label_counts(distribution: dict[str, dict[str, int]] | None) -> str:
    """``"7,8 / 15,0"``: gold and predicted counts per choice index (``?n``: n unparsed)."""
    if not distribution:
        return ""
    gold, pred = distribution["gold"], distribution["pred"]
    indices = sorted({int(k) for k in (*gold, *pred) if int(k) >= 0})

    def counts(table: dict[str, int]) -> str:
        text = ",".join(str(table.get(str(i), 0)) for i in indices)
        return text + (f" ?{table['-1']}" if "-1" in table else "")

    return f"{counts(gold)} / {counts(pred)}"


def _metric_order(name: str) -> tuple[int, str]:
    order = ["acc", "acc_norm", "mcc", "f1"]
    return (order.index(name) if name in order else len(order), name)
