"""Matplotlib figures for the analysis.

Figures are built with ``matplotlib.figure.Figure`` directly (not pyplot), so they render to files
with the Agg canvas whatever backend the session uses, and never open windows or leak global state.

Every figure is ``WIDTH`` inches wide at ``DPI`` (960 pixels): a report (GitHub, an editor's preview)
shows it at about its own size, so the 7-8 pt labels stay readable. Layer-wise values are drawn as
heatmaps with blocks on the x axis (one row per task), never one row per layer, so a 30-block model
keeps the figure compact.
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


WIDTH = 8.0
DPI = 120
TITLE_SIZE, LABEL_SIZE, TICK_SIZE = 10, 8, 7


def new_figure(**kwargs):
    """A ``matplotlib.figure.Figure(**kwargs)``, the one way samora makes a figure (analysis, ``report.md``,
    ``comparison.png``, ``bench.png``): no pyplot, so no backend to choose, no window, nothing to close."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _grid(fig, count: int, cols: int):
    """``count`` axes in rows of ``cols`` inside ``fig`` (a figure or subfigure); spare cells hidden."""
    rows = math.ceil(count / cols)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return list(axes.flat[:count])


def usage_norm(values: list[torch.Tensor], experts: int):
    """A diverging colour scale centred on uniform use 1/N, as wide as the largest deviation.

    White is 1/N (every expert used equally), red more than 1/N, blue less; the range is
    ``1/N +- max |share - 1/N|`` (clipped to [0, 1]), so small but real specialisation is visible.
    """
    from matplotlib.colors import Normalize, TwoSlopeNorm

    if experts < 2:
        return Normalize(0.0, 1.0)
    uniform = 1.0 / experts
    finite = torch.cat([v.flatten() for v in values])
    finite = finite[~torch.isnan(finite)]
    spread = max(float((finite - uniform).abs().max()) if finite.numel() else 0.0, 0.01)
    return TwoSlopeNorm(vcenter=uniform, vmin=max(0.0, uniform - spread), vmax=min(1.0, uniform + spread))


def _usage_heatmap(
    ax, values: torch.Tensor, rows: list[str] | None, title: str, norm, annotate: bool, text_size: int = TICK_SIZE - 1
):
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="lightgrey")
    image = ax.imshow(values.numpy(), norm=norm, cmap=cmap, aspect="auto")
    ax.set_title(title, fontsize=LABEL_SIZE)
    experts = values.shape[1]
    step = max(1, math.ceil(experts / 8))
    ax.set_xticks(range(0, experts, step), [str(e) for e in range(0, experts, step)], fontsize=TICK_SIZE)
    ax.set_yticks(range(values.shape[0]), rows or [], fontsize=TICK_SIZE)
    if annotate:
        for (row, col), value in _items(values):
            dark = not math.isnan(value) and abs(float(norm(value)) - 0.5) > 0.3
            ax.text(
                col,
                row,
                "-" if math.isnan(value) else f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=text_size,
                color="white" if dark else "black",
            )
    return image


def _colorbar(fig, image, ax, label: str) -> None:
    bar = fig.colorbar(image, ax=ax, shrink=0.9)
    bar.set_label(label, fontsize=LABEL_SIZE)
    bar.ax.tick_params(labelsize=TICK_SIZE)


def _items(values: torch.Tensor):
    for row in range(values.shape[0]):
        for col in range(values.shape[1]):
            yield (row, col), float(values[row, col])


def plot_usage(usage: dict[str, torch.Tensor], mean_usage: torch.Tensor, groups: list[str], path: Path) -> Path:
    """Expert usage per task (rows sum to 1): the mean over routed layers, then each layer in ``usage``.

    usage: layer name -> (groups, N) shares; mean_usage: (groups, N). All panels share one diverging
    colour scale centred on uniform use 1/N (:func:`usage_norm`).
    """
    experts = mean_usage.shape[1]
    norm = usage_norm([mean_usage, *usage.values()], experts)
    cols = 4
    row_height = 0.16 * len(groups) + 0.55
    mean_height = 0.22 * len(groups) + 0.9
    fig = new_figure(
        figsize=(WIDTH, mean_height + row_height * math.ceil(len(usage) / cols) + 0.5), layout="constrained"
    )
    top, bottom = fig.subfigures(
        2, 1, height_ratios=[mean_height, max(row_height * math.ceil(len(usage) / cols), 0.01)]
    )
    mean_ax = top.subplots()
    image = _usage_heatmap(
        mean_ax, mean_usage, groups, "mean over routed layers", norm, experts <= 8, text_size=TICK_SIZE
    )
    mean_ax.set_xlabel("expert", fontsize=LABEL_SIZE)
    _colorbar(top, image, mean_ax, f"router-weight share (white: 1/{experts})")
    if usage:
        for index, (ax, (name, values)) in enumerate(zip(_grid(bottom, len(usage), cols), usage.items(), strict=True)):
            _usage_heatmap(ax, values, groups if index % cols == 0 else None, short_name(name), norm, experts <= 4)
    fig.suptitle(f"Expert usage per task ({experts} experts; red: above uniform, blue: below)", fontsize=TITLE_SIZE)
    fig.savefig(path, dpi=DPI)
    return path


def plot_expert_pca(projections: dict[str, dict], path: Path) -> Path:
    """Scatter of expert outputs on their first two principal components, one panel per layer."""
    cols = 2 if len(projections) <= 4 else 4
    panel = WIDTH / cols
    fig = new_figure(figsize=(WIDTH, panel * 0.9 * math.ceil(len(projections) / cols) + 0.4), layout="constrained")
    axes = _grid(fig, len(projections), cols)
    for ax, (name, entry) in zip(axes, projections.items(), strict=True):
        points, labels = entry["points"], entry["experts"]
        for expert in range(int(labels.max()) + 1):
            chosen = points[labels == expert]
            ax.scatter(chosen[:, 0], chosen[:, 1], s=5, alpha=0.6, label=f"expert {expert}")
        score = entry["separation"]
        score_text = "n/a" if score is None else f"{score:.2f}"
        ratios = entry["explained_variance_ratio"]
        ax.set_title(f"{short_name(name)}  separation {score_text}", fontsize=LABEL_SIZE)
        ax.set_xlabel(f"PC1 ({ratios[0]:.0%})", fontsize=LABEL_SIZE)
        ax.set_ylabel(f"PC2 ({ratios[1]:.0%})", fontsize=LABEL_SIZE)
        ax.tick_params(labelsize=TICK_SIZE)
    axes[0].legend(fontsize=TICK_SIZE, markerscale=2)
    fig.suptitle("Expert outputs B_i(S A x) on real tokens, PCA", fontsize=TITLE_SIZE)
    fig.savefig(path, dpi=DPI)
    return path


def _module_kind(name: str) -> str:
    """What a module is within its block: "model.layers.3.self_attn.q_proj" -> "self_attn.q_proj"."""
    parts = name.split(".")
    numbered = [i for i, part in enumerate(parts) if part.isdigit()]
    return ".".join(parts[numbered[-1] + 1 :]) if numbered else name


def _kind_labels(kinds: list[str]) -> dict[str, str]:
    """The last name part ("q_proj") where that is unambiguous, else the whole kind ("mlp.c_proj")."""
    last = [kind.rsplit(".", 1)[-1] for kind in kinds]
    return {kind: short if last.count(short) == 1 else kind for kind, short in zip(kinds, last)}


def gate_tables(gates: dict[str, dict[str, float]]) -> tuple[list[str], list[int], dict[str, torch.Tensor]]:
    """``(rows, blocks, kind -> (rows, blocks) values)`` of the task gates; NaN where a block lacks a kind.

    rows: the trained tasks, then ``"<unseen>"`` when the gates have it (the unseen-task route).
    """
    first = next(iter(gates.values()))
    rows = [t for t in first if t != "<unseen>"] + (["<unseen>"] if "<unseen>" in first else [])
    blocks = sorted({block_and_kind(name)[0] for name in gates})
    kinds = list(dict.fromkeys(_module_kind(name) for name in gates))
    tables = {kind: torch.full((len(rows), len(blocks)), float("nan")) for kind in kinds}
    for name, values in gates.items():
        column = blocks.index(block_and_kind(name)[0])
        tables[_module_kind(name)][:, column] = torch.tensor([values[row] for row in rows])
    return rows, blocks, tables


def plot_task_gates(gates: dict[str, dict[str, float]], path: Path) -> Path:
    """g_task per task: the last block's projections as bars (the paper's figure), then one heatmap
    per projection kind with tasks as rows and blocks as columns (shared colour scale)."""
    import matplotlib

    rows, blocks, tables = gate_tables(gates)
    labels = _kind_labels(list(tables))
    heat_height = 0.17 * len(rows) + 0.55
    fig = new_figure(figsize=(WIDTH, 2.6 + heat_height * len(tables) + 0.3), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.6, heat_height * len(tables)])
    bars = top.subplots()
    width = 0.8 / len(tables)
    for offset, (kind, table) in enumerate(tables.items()):
        bars.bar([i + offset * width for i in range(len(rows))], table[:, -1].tolist(), width, label=labels[kind])
    bars.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], rows, rotation=30, ha="right", fontsize=TICK_SIZE)
    bars.set_ylim(0, 1)
    bars.set_ylabel("g_task", fontsize=LABEL_SIZE)
    bars.tick_params(axis="y", labelsize=TICK_SIZE)
    bars.set_title(f"task gate of the last block ({blocks[-1]})", fontsize=LABEL_SIZE)
    bars.legend(fontsize=TICK_SIZE, ncols=min(4, len(tables)), loc="upper right")
    values = torch.stack(list(tables.values()))
    low, high = float(values.nan_to_num(2.0).min()), float(values.nan_to_num(-1.0).max())
    norm = matplotlib.colors.Normalize(low - 1e-3, high + 1e-3)  # the values' own range: differences show
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    axes = bottom.subplots(len(tables), 1, squeeze=False, sharex=True)[:, 0]
    step = max(1, math.ceil(len(blocks) / 16))
    for ax, (kind, table) in zip(axes, tables.items(), strict=True):
        image = ax.imshow(table.numpy(), norm=norm, cmap=cmap, aspect="auto")
        ax.set_yticks(range(len(rows)), rows, fontsize=TICK_SIZE)
        ax.set_title(labels[kind], fontsize=LABEL_SIZE, loc="left")
    axes[-1].set_xticks(range(0, len(blocks), step), [str(b) for b in blocks[::step]], fontsize=TICK_SIZE)
    axes[-1].set_xlabel("block", fontsize=LABEL_SIZE)
    _colorbar(bottom, image, list(axes), "g_task")
    fig.suptitle("Task-adaptive gate g_task = sigmoid(W_gate e_t + b)", fontsize=TITLE_SIZE)
    fig.savefig(path, dpi=DPI)
    return path
