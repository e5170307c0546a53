"""A run's ``report.md`` and its plots (training loss; per-task metrics before and after)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def primary_metric(entry: dict[str, Any]) -> tuple[str, float] | None:
    """The task's primary metric and value (acc for most tasks, mcc for CoLA...), if evaluated."""
    metrics = entry.get("metrics") or {}
    name = entry.get("primary_metric")
    return (name, float(metrics[name])) if name in metrics else None


def task_rows(metrics: dict[str, Any]) -> list[tuple[str, str, float | None, float | None]]:
    """(task, metric, before, after) for every evaluated task."""
    before = (metrics.get("before") or {}).get("tasks", {})
    after = (metrics.get("after") or {}).get("tasks", {})
    rows = []
    for task in after or before:
        picked = primary_metric(after.get(task, {})) or primary_metric(before.get(task, {}))
        if picked is None:
            continue
        name = picked[0]
        old = (before.get(task, {}).get("metrics") or {}).get(name)
        new = (after.get(task, {}).get("metrics") or {}).get(name)
        rows.append((task, name, old, new))
    return rows


def plot_training_loss(log_history: list[dict], path: Path) -> Path | None:
    points = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    if not points:
        return None
    figure, axis = plt.subplots(figsize=(6, 3.5))
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


def plot_task_metrics(rows: list[tuple[str, str, float | None, float | None]], path: Path) -> Path | None:
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(max(6, 0.8 * len(rows)), 3.5))
    positions = range(len(rows))
    width = 0.4
    axis.bar([p - width / 2 for p in positions], [r[2] or 0 for r in rows], width, label="before")
    axis.bar([p + width / 2 for p in positions], [r[3] or 0 for r in rows], width, label="after")
    axis.set_xticks(list(positions), [f"{r[0]}\n({r[1]})" for r in rows], fontsize=7)
    axis.set_ylabel("metric")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, path)


def write_report(run_dir: Path, config, metrics: dict[str, Any], log_history: list[dict]) -> Path:
    """Write ``report.md`` (and the plots it shows) into ``run_dir``; return its path."""
    plots = run_dir / "plots"
    rows = task_rows(metrics)
    loss_plot = plot_training_loss(log_history, plots / "training_loss.png")
    metric_plot = plot_task_metrics(rows, plots / "task_metrics.png")
    train = metrics.get("train", {})
    after = metrics.get("after") or {}
    lines = [
        f"# samora run: {train.get('method', config.adapter.get('method'))} on {metrics.get('model', config.model.name)}",
        "",
        "| | |", "|---|---|",
        f"| tasks | {', '.join(metrics.get('tasks', []))} |",
        f"| adapter | {config.adapter} |",
        f"| trainable parameters | {train.get('trainable_parameters', 0):,} of {train.get('total_parameters', 0):,} |",
        f"| training | {train.get('steps')} steps, {train.get('examples')} examples in the stream, "
        f"batch {config.train.batch_size} x {config.train.grad_accum}, lr {config.train.learning_rate} |",
        f"| final mean training loss | {train.get('train_loss', float('nan')):.4f} |",
        f"| time, throughput | {train.get('runtime_s', 0):.0f} s, {train.get('tokens_per_second', 0):.0f} tokens/s |",
        f"| evaluation | protocol `{after.get('protocol', config.eval.protocol)}`, split `{config.eval.split}`, "
        f"{config.eval.limit or 'all'} examples per task, template `{after.get('template')}` |",
        "",
        "## Per-task metrics",
        "",
        "| task | metric | before | after | change |",
        "|---|---|---|---|---|",
    ]
    for task, name, old, new in rows:
        change = f"{new - old:+.4f}" if old is not None and new is not None else ""
        lines.append(f"| {task} | {name} | {_fmt(old)} | {_fmt(new)} | {change} |")
    counts = {t: e.get("n") for t, e in (after.get("tasks") or {}).items()}
    if counts:
        lines += ["", f"Examples per task: {counts}."]
    for title, plot in (("Training loss", loss_plot), ("Metrics before and after", metric_plot)):
        if plot is not None:
            lines += ["", f"## {title}", "", f"![{title}]({plot.relative_to(run_dir)})"]
    lines += _analysis_lines(metrics.get("analysis") or {}, run_dir)
    lines += ["", "## Files", "", "- `config.yaml`: the configuration as used",
              "- `adapter/`: the adapter (load with `samora.load_adapter(base_model, path)`)",
              "- `metrics.json`: every number above", "- `analysis/`: router statistics and plots"]
    path = run_dir / "report.md"
    temporary = run_dir / ".report.md.tmp"
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, path)
    return path


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


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
