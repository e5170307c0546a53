"""Matplotlib figures for the analysis.

Figures are built with ``matplotlib.figure.Figure`` directly (not pyplot), so they render to files
with the Agg canvas whatever backend the session uses, and never open windows or leak global state.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

_BLOCK = re.compile(r"\.(\d+)\.")


def block_and_kind(name: str) -> tuple[int, str]:
    """(block index, projection name) of an adapted module: "model.layers.11.self_attn.q_proj" -> (11, "q_proj").

    Modules outside numbered blocks get block -1.
    """
    blocks = _BLOCK.findall(f".{name}.")
    return (int(blocks[-1]) if blocks else -1), name.rsplit(".", 1)[-1]


def short_name(name: str) -> str:
    block, kind = block_and_kind(name)
    return f"{block}.{kind}" if block >= 0 else kind


def _figure(**kwargs):
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _grid(count: int, width: float, height: float):
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig = _figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, list(axes.flat[:count])


def _heatmap(ax, values: torch.Tensor, rows: list[str], title: str, annotate: bool):
    image = ax.imshow(values.numpy(), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_title(title, fontsize=9)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    experts = values.shape[1]
    step = max(1, experts // 16)
    ax.set_xticks(range(0, experts, step), [str(e) for e in range(0, experts, step)], fontsize=7)
    ax.set_xlabel("expert", fontsize=8)
    if annotate:
        for (row, col), value in _items(values):
            ax.text(col, row, "-" if math.isnan(value) else f"{value:.2f}", ha="center", va="center",
                    fontsize=6, color="white" if not math.isnan(value) and value < 0.5 else "black")
    return image


def _items(values: torch.Tensor):
    for row in range(values.shape[0]):
        for col in range(values.shape[1]):
            yield (row, col), float(values[row, col])


def plot_usage(usage: dict[str, torch.Tensor], mean_usage: torch.Tensor, groups: list[str], path: Path) -> Path:
    """Heatmaps of per-task expert usage: the mean over layers first, then each layer in ``usage``."""
    panels = [("mean over routed layers", mean_usage)] + [(short_name(n), u) for n, u in usage.items()]
    fig, axes = _grid(len(panels), 3.2, 0.45 * len(groups) + 1.4)
    annotate = mean_usage.shape[1] <= 8
    image = None
    for ax, (title, values) in zip(axes, panels, strict=True):
        image = _heatmap(ax, values, groups, title, annotate)
    fig.colorbar(image, ax=axes, shrink=0.8, label="mean router-weight share")
    fig.suptitle("Expert usage per task (rows sum to 1)", fontsize=11)
    fig.savefig(path, dpi=120)
    return path


def plot_expert_pca(projections: dict[str, dict], path: Path) -> Path:
    """Scatter of expert outputs on their first two principal components, one panel per layer."""
    fig, axes = _grid(len(projections), 3.6, 3.4)
    for ax, (name, entry) in zip(axes, projections.items(), strict=True):
        points, labels = entry["points"], entry["experts"]
        for expert in range(int(labels.max()) + 1):
            chosen = points[labels == expert]
            ax.scatter(chosen[:, 0], chosen[:, 1], s=5, alpha=0.6, label=f"expert {expert}")
        score = entry["separation"]
        score_text = "n/a" if score is None else f"{score:.2f}"
        ratios = entry["explained_variance_ratio"]
        ax.set_title(f"{short_name(name)}  separation {score_text}", fontsize=9)
        ax.set_xlabel(f"PC1 ({ratios[0]:.0%})", fontsize=8)
        ax.set_ylabel(f"PC2 ({ratios[1]:.0%})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, markerscale=2)
    fig.suptitle("Expert outputs B_i(S A x) on real tokens, PCA", fontsize=11)
    fig.savefig(path, dpi=120)
    return path


def plot_task_gates(gates: dict[str, dict[str, float]], path: Path) -> Path:
    """Left: g_task per task for each projection of the last block; right: every gated layer x task."""
    tasks = [t for t in next(iter(gates.values())) if t != "<unseen>"]
    last_block = max(block_and_kind(n)[0] for n in gates)
    last = {block_and_kind(n)[1]: values for n, values in gates.items() if block_and_kind(n)[0] == last_block}
    names = sorted(gates, key=lambda n: block_and_kind(n)[0])
    fig = _figure(figsize=(5 + 0.5 * len(tasks), 3.5 + 0.18 * len(names)), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    width = 0.8 / max(1, len(last))
    for offset, (kind, values) in enumerate(last.items()):
        left.bar([i + offset * width for i in range(len(tasks))], [values[t] for t in tasks], width, label=kind)
    left.set_xticks([i + 0.4 - width / 2 for i in range(len(tasks))], tasks, rotation=45, ha="right", fontsize=8)
    left.set_ylim(0, 1)
    left.set_ylabel("g_task")
    left.set_title(f"task gate, block {last_block}", fontsize=10)
    left.legend(fontsize=7)
    matrix = torch.tensor([[gates[n][t] for t in tasks] for n in names])
    image = right.imshow(matrix.numpy(), vmin=0, vmax=1, cmap="magma", aspect="auto")
    right.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", fontsize=8)
    step = max(1, len(names) // 24)
    right.set_yticks(range(0, len(names), step), [short_name(n) for n in names[::step]], fontsize=6)
    right.set_title("task gate, all gated layers", fontsize=10)
    fig.colorbar(image, ax=right, shrink=0.8)
    fig.savefig(path, dpi=120)
    return path
