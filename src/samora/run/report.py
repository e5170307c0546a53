"""A run's ``report.md`` and its plots (training loss; per-task metrics before and after)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from samora.analysis.plots import new_figure


def primary_metric(entry: dict[str, Any]) -> tuple[str, float] | None:
    """The task's primary metric and value (acc for most tasks, mcc for CoLA...), if evaluated."""
    metrics = entry.get("metrics") or {}
    name = entry.get("primary_metric")
    return (name, float(metrics[name])) if name in metrics else None


def task_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per evaluated task: its primary metric, and before / after (each ``None`` or
    ``{value, ci95, labels}``), chance level and majority-class baseline."""
    before = (metrics.get("before") or {}).get("tasks", {})
    after = (metrics.get("after") or {}).get("tasks", {})
    rows = []
    for task in after or before:
        picked = primary_metric(after.get(task, {})) or primary_metric(before.get(task, {}))
        if picked is None:
            continue
        name = picked[0]
        either = after.get(task) or before.get(task)
        rows.append(
            {
                "task": task,
                "metric": name,
                "before": _stage(before.get(task), name),
                "after": _stage(after.get(task), name),
                "chance": either.get("chance"),
                "majority": either.get("majority_baseline"),
            }
        )
    return rows


def _stage(entry: dict[str, Any] | None, metric: str) -> dict[str, Any] | None:
    if not entry or metric not in (entry.get("metrics") or {}):
        return None
    statistics = (entry.get("statistics") or {}).get(metric, {})
    return {
        "value": float(entry["metrics"][metric]),
        "ci95": statistics.get("ci95"),
        "labels": entry.get("label_distribution"),
    }


def plot_training_loss(log_history: list[dict], path: Path) -> Path | None:
    points = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    if not points:
        return None
    figure = new_figure(figsize=(6, 3.5))
    axis = figure.subplots()
    axis.plot(*zip(*points), marker="o", markersize=3, label="loss (task + regularisers)")
    for key in sorted({k for entry in log_history for k in entry if k.startswith("loss/") or k.startswith("aux/")}):
        series = [(entry["step"], entry[key]) for entry in log_history if key in entry]
        if series:
            axis.plot(*zip(*series), linewidth=1, marker=".", label=key)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    return _save(figure, path)


def plot_task_metrics(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Bars before / after per task with 95% interval error bars; the chance accuracy as a tick
    (on accuracy rows only: the chance level of MCC is 0, of F1 depends on the labels)."""
    if not rows:
        return None
    figure = new_figure(figsize=(max(6, 0.8 * len(rows)), 3.5))
    axis = figure.subplots()
    positions = np.arange(len(rows))
    width = 0.4
    for offset, stage in ((-width / 2, "before"), (width / 2, "after")):
        values = [r[stage]["value"] if r[stage] else 0.0 for r in rows]
        axis.bar(positions + offset, values, width, label=stage, yerr=_error_bars([r[stage] for r in rows]), capsize=2)
    chance = [r["chance"] if r["chance"] is not None and r["metric"] == "acc" else np.nan for r in rows]
    axis.scatter(positions, chance, marker="_", s=400, color="black", label="chance accuracy", zorder=3)
    axis.set_xticks(list(positions), [f"{r['task']}\n({r['metric']})" for r in rows], fontsize=7)
    axis.set_ylabel("metric (95% CI)")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, path)


def _error_bars(stages: list[dict[str, Any] | None]) -> np.ndarray:
    """(2, n) distances from each value to its interval's ends (0 where there is none)."""
    bars = np.zeros((2, len(stages)))
    for i, stage in enumerate(stages):
        if stage and stage.get("ci95"):
            bars[:, i] = [stage["value"] - stage["ci95"][0], stage["ci95"][1] - stage["value"]]
    return np.clip(bars, 0, None)


def write_report(
    run_dir: Path, config, metrics: dict[str, Any], log_history: list[dict], warnings: list[str] = ()
) -> Path:
    """Write ``report.md`` (and the plots it shows) into ``run_dir``; return its path. ``warnings``:
    the messages of the warnings logged during the run, repeated under a "Warnings" heading."""
    plots = run_dir / "plots"
    rows = task_rows(metrics)
    loss_plot = plot_training_loss(log_history, plots / "training_loss.png")
    metric_plot = plot_task_metrics(rows, plots / "task_metrics.png")
    lines = [*_summary_lines(config, metrics), *_metric_lines(rows, metrics)]
    for title, plot in (("Training loss", loss_plot), ("Metrics before and after", metric_plot)):
        if plot is not None:
            lines += ["", f"## {title}", "", f"![{title}]({plot.relative_to(run_dir)})"]
    lines += _analysis_lines(metrics.get("analysis") or {}, run_dir)
    if warnings:
        lines += ["", "## Warnings", "", *(f"- {message}" for message in dict.fromkeys(warnings))]
    lines += _file_lines(run_dir)
    path = run_dir / "report.md"
    temporary = run_dir / ".report.md.tmp"
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, path)
    return path


def _summary_lines(config, metrics: dict[str, Any]) -> list[str]:
    """The title and the table of what was trained, how, and how it was evaluated."""
    train = metrics.get("train", {})
    after = metrics.get("after") or {}
    return [
        f"# samora run: {train.get('method', config.adapter.get('method'))} "
        f"on {metrics.get('model', config.model.name)}",
        "",
        "| | |",
        "|---|---|",
        f"| tasks | {', '.join(metrics.get('tasks', []))} |",
        f"| adapter | {config.adapter} |",
        f"| trainable parameters | {train.get('trainable_parameters', 0):,} of {train.get('total_parameters', 0):,} |",
        f"| training | {train.get('steps')} steps, {train.get('examples')} examples in the stream, "
        f"batch {config.train.per_device_train_batch_size} x {config.train.gradient_accumulation_steps} "
        f"x {train.get('processes', 1)} process(es), "
        f"lr {config.train.learning_rate} |",
        f"| final mean training loss | {train.get('train_loss', float('nan')):.4f} |",
        f"| time, throughput | {train.get('runtime_s', 0):.0f} s, {train.get('tokens_per_second', 0):.0f} tokens/s |",
        f"| evaluation | protocol `{after.get('protocol', config.eval.protocol)}`, split `{config.eval.split}`, "
        f"{config.eval.limit or 'all'} examples per task, template `{after.get('template')}` |",
    ]


def _metric_lines(rows: list[dict[str, Any]], metrics: dict[str, Any]) -> list[str]:
    """The per-task table (before, after, change, baselines, label counts), the benchmark means and
    the number of examples per task."""
    after = metrics.get("after") or {}
    lines = [
        "",
        "## Per-task metrics",
        "",
        "Each value with its 95% bootstrap interval over examples; chance = mean 1/choices; majority = "
        "always answering the most frequent gold choice; labels = gold / predicted count per choice index "
        "(a shift of the predicted counts is a label bias, not knowledge).",
        "",
        "| task | metric | before [95% CI] | after [95% CI] | change | chance | majority "
        "| labels gold / before / after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        old, new = row["before"], row["after"]
        change = f"{new['value'] - old['value']:+.4f}" if old and new else ""
        lines.append(
            f"| {row['task']} | {row['metric']} | {_fmt(old)} | {_fmt(new)} | {change} | "
            f"{_fmt_plain(row['chance'])} | {_fmt_plain(row['majority'])} | {_labels(old, new)} |"
        )
    before_average = (metrics.get("before") or {}).get("average", {})
    for benchmark, average in (after.get("average") or before_average).items():
        old, new = before_average.get(benchmark), (after.get("average") or {}).get(benchmark)
        change = f"{new['value'] - old['value']:+.4f}" if old and new else ""
        lines.append(
            f"| **mean ({benchmark}, {average['n_tasks']} tasks)** | primary | {_fmt(old)} | "
            f"{_fmt(new)} | {change} | | | |"
        )
    counts = {t: e.get("n") for t, e in (after.get("tasks") or {}).items()}
    if counts:
        lines += ["", f"Examples per task: {counts}."]
    return lines


def _file_lines(run_dir: Path) -> list[str]:
    lines = [
        "",
        "## Files",
        "",
        "- `config.yaml`: the configuration as used",
        "- `adapter/`: the adapter (load with `samora.load_adapter(base_model, path)`)",
        "- `metrics.json`: every number above",
        "- `analysis/`: router statistics and plots",
        "- `history.jsonl`: every logged training scalar (loss, lr, grad norm, router/gate statistics) per step",
    ]
    if (run_dir / "tensorboard").is_dir():
        lines.append("- `tensorboard/`: the same as TensorBoard events (`tensorboard --logdir tensorboard`)")
    return lines


def _analysis_lines(analysis: dict[str, Any], run_dir: Path) -> list[str]:
    if not analysis:
        return []
    lines = ["", "## What the router learned", ""]
    if "skipped" in analysis:
        return lines + [f"Not analysed: {analysis['skipped']}."]
    warning = (analysis.get("collapse") or {}).get("warning")
    lines.append(f"- warning: {warning}" if warning else "- no router collapse detected")
    for name, file in (analysis.get("files") or {}).items():
        path = Path(file)
        if path.suffix == ".png":
            shown = path.relative_to(run_dir) if run_dir.resolve() in path.resolve().parents else path
            lines += ["", f"![{name}]({shown})"]
    return lines


def _fmt(stage: dict[str, Any] | None) -> str:
    if stage is None:
        return ""
    ci = stage.get("ci95")
    return f"{stage['value']:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _fmt_plain(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _labels(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """``"7,8 / 15,0 / 0,15"``: gold, then predicted before and after, per choice index."""
    stages = [s["labels"] for s in (old, new) if s and s.get("labels")]
    if not stages:
        return ""
    gold = stages[0]["gold"]
    indices = sorted({int(k) for d in stages for k in (*d["gold"], *d["pred"])})
    parts = [gold, *[d["pred"] for d in stages]]
    return " / ".join(",".join(str(part.get(str(i), 0)) for i in indices) for part in parts)


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
