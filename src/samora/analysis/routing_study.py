"""The routing study's analysis (the paper's Fig. 5 and Fig. 3): each trained cell routes examples of
tasks it never saw (task id -1), then one summary compares the routers.

Per cell (:func:`analyze_unseen`, into ``<cell>/unseen/``): :func:`samora.analysis.analyze` on the
unseen examples (per-layer usage and collapse; the expert-feature PCA of :func:`pca_layer_of` on
``PCA_TOKENS`` tokens, with its points) plus ``unseen.json``:
each example's subject and routing distribution, the expert share per subject and the collapse
statistics of :mod:`samora.analysis.unseen`.

Summary (:func:`summarize_routing_study`): per router, the cells' per-example distributions averaged
over seeds (every cell routes the same examples in the same order, so example i of one seed is
example i of the other), then the expert share per subject (``fig5_expert_share.png``: subjects x
experts, one panel per router), the collapse statistics with bootstrap intervals over examples, and
the expert-feature PCA of one layer per router (``fig3_expert_pca.png``, the first seed's cell) with
its separation score (:func:`samora.analysis.features.separation`). ``routing.json`` holds the
numbers, ``routing.md`` the tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path

import torch

from samora.analysis.analyze import PCA_POINTS_NAME, RESULTS_NAME, analyze
from samora.analysis.plots import (
    DPI,
    LABEL_SIZE,
    TICK_SIZE,
    TITLE_SIZE,
    WIDTH,
    block_and_kind,
    new_figure,
    short_name,
    usage_norm,
)
from samora.analysis.unseen import ExampleRouting, collapse_statistics, expert_shares
from samora.files import write_text_atomic
from samora.inject import adapter_of

UNSEEN_NAME = "unseen.json"
UNSEEN_TASK_ID = -1
PCA_TOKENS = 1024  # tokens whose expert outputs the PCA projects (x N experts points)


def unseen_batches(tokenizer, subjects: Sequence[str], *, limit: int, max_length: int, seed: int, batch_size: int = 8):
    """Collated batches of ``limit`` evaluation examples per subject (prompt and answer, as
    ``samora analyze`` feeds them) routed as unseen (task id -1); returns ``(batches, labels)`` with
    one subject label per example, in order. The subjects take turns (example 1 of each subject, then
    example 2, ...), so the first batches, where the PCA samples its tokens, hold every subject."""
    from samora.data import MultiTaskCollator, load_examples
    from samora.data.encoding import tokenize_for_training

    per_subject = []
    for subject in subjects:
        examples = load_examples(subject, "eval", limit=limit, seed=seed)
        encoded = tokenize_for_training(
            tokenizer, list(examples["prompt"]), list(examples["target"]), max_length=max_length
        )
        rows = [{**{k: v[i] for k, v in encoded.items()}, "task_ids": UNSEEN_TASK_ID} for i in range(len(examples))]
        per_subject.append([(subject, row) for row in rows])
    taking_turns = [pair for turn in zip_longest(*per_subject) for pair in turn if pair is not None]
    labels = [subject for subject, _ in taking_turns]
    rows = [row for _, row in taking_turns]
    collate = MultiTaskCollator(tokenizer)
    return [collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)], labels


def pca_layer_of(model) -> str:
    """The layer of the study's expert PCA: the last block's ``o_proj`` (else its last adapted module)."""
    names = sorted(adapter_of(model).layers, key=lambda name: block_and_kind(name)[0])
    last = [name for name in names if block_and_kind(name)[0] == block_and_kind(names[-1])[0]]
    return next((name for name in last if name.endswith("o_proj")), last[-1])


def analyze_unseen(model, batches: list, labels: Sequence[str], output: Path, bootstrap_samples: int = 2000) -> dict:
    """Analyse one cell on the unseen examples into ``output``; return what ``unseen.json`` holds."""
    recorder = ExampleRouting()
    analysis = analyze(
        model,
        batches,
        output,
        recorders=[recorder],
        save_pca_points=True,
        pca_layers=[pca_layer_of(model)],
        pca_tokens=PCA_TOKENS,
    )
    distributions = recorder.distributions()
    result = {
        "subjects": list(dict.fromkeys(labels)),
        "labels": list(labels),
        "distributions": distributions.round(decimals=6).tolist(),
        "expert_share": expert_shares(distributions, labels),
        "collapse": collapse_statistics(distributions, samples=bootstrap_samples),
        "collapse_per_layer": collapse_statistics(recorder.layer_distributions(), samples=bootstrap_samples),
        "layer_collapse": analysis["collapse"],
    }
    write_text_atomic(output / UNSEEN_NAME, json.dumps(result, indent=2) + "\n")
    return result


def summarize_routing_study(
    cells: dict[str, list[Path]], output: Path, bootstrap_samples: int = 2000, pca_layer: str | None = None
) -> dict:
    """Compare routers: ``cells`` maps a router label to its cells' ``unseen/`` folders (seed order).

    Writes ``routing.json``, ``routing.md``, ``fig5_expert_share.png`` and ``fig3_expert_pca.png``
    into ``output``; returns the ``routing.json`` content. ``pca_layer``: the layer of the PCA figure
    (default: the first layer with points; :func:`analyze_unseen` keeps only :func:`pca_layer_of`'s).
    """
    routers = {}
    for router, folders in cells.items():
        if not folders:
            raise ValueError(f"router {router!r} has no analysed cell; run its cells first")
        routers[router] = _router_summary([json.loads((f / UNSEEN_NAME).read_text()) for f in folders], folders)
        routers[router]["collapse"] = collapse_statistics(routers[router].pop("pooled"), samples=bootstrap_samples)
    output.mkdir(parents=True, exist_ok=True)
    summary = {"routers": routers}
    pca = {router: _pca_of(Path(entry["cells"][0]), pca_layer) for router, entry in routers.items()}
    summary["files"] = {
        "fig5": str(plot_expert_share(routers, output / "fig5_expert_share.png")),
        "fig3": str(plot_router_pca(pca, output / "fig3_expert_pca.png")),
    }
    summary["pca_separation"] = {
        router: {"layer": p["layer"], "separation": p["separation"]} for router, p in pca.items()
    }
    write_text_atomic(output / "routing.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(output / "routing.md", routing_markdown(summary))
    return summary


def _router_summary(results: list[dict], folders: list[Path]) -> dict:
    labels = results[0]["labels"]
    if any(r["labels"] != labels for r in results):
        raise ValueError(f"the cells {[str(f) for f in folders]} routed different examples; analyse them alike")
    stacked = torch.tensor([r["distributions"] for r in results], dtype=torch.float64)  # (seeds, examples, E)
    pooled = stacked.mean(0)
    return {
        "cells": [str(f) for f in folders],
        "subjects": results[0]["subjects"],
        "examples": len(labels),
        "expert_share": expert_shares(pooled, labels),
        "per_seed": [{k: r[k] for k in ("collapse", "collapse_per_layer", "layer_collapse")} for r in results],
        "pooled": pooled,
    }


def _pca_of(folder: Path, layer: str | None) -> dict:
    """The PCA points of one layer of a cell's analysis, with that layer's separation score."""
    points = json.loads((folder / PCA_POINTS_NAME).read_text())
    layer = layer or next(iter(points))
    if layer not in points:
        raise ValueError(f"{folder / PCA_POINTS_NAME} has no layer {layer!r}; it has {sorted(points)}")
    separation = json.loads((folder / RESULTS_NAME).read_text())["expert_pca"][layer]["separation"]
    return {"layer": layer, "separation": separation, **points[layer]}


def plot_expert_share(routers: dict[str, dict], path: Path) -> Path:
    """Fig. 5: per router a heatmap of the expert share (rows: subjects, columns: experts), white at 1/E."""
    tables = {r: torch.tensor(list(e["expert_share"].values())) for r, e in routers.items()}
    experts = next(iter(tables.values())).shape[1]
    norm = usage_norm(list(tables.values()), experts)
    fig = new_figure(figsize=(WIDTH, 0.35 * max(len(t) for t in tables.values()) + 1.6), layout="constrained")
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    for ax, (router, table) in zip(axes, tables.items(), strict=True):
        image = ax.imshow(table.numpy(), norm=norm, cmap="RdBu_r", aspect="auto")
        for (row, col), value in zip(torch.cartesian_prod(*map(torch.arange, table.shape)).tolist(), table.flatten()):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=TICK_SIZE - 2)
        ax.set_title(router, fontsize=LABEL_SIZE)
        ax.set_xticks(range(experts), [str(e) for e in range(experts)], fontsize=TICK_SIZE)
        ax.set_yticks(range(len(table)), [s.removeprefix("mmlu_") for s in routers[router]["expert_share"]])
        ax.tick_params(labelsize=TICK_SIZE)
        ax.set_xlabel("expert", fontsize=LABEL_SIZE)
    fig.colorbar(image, ax=list(axes), shrink=0.8).ax.tick_params(labelsize=TICK_SIZE)
    fig.suptitle("Expert share on unseen MMLU subjects (task id -1), mean over seeds", fontsize=TITLE_SIZE)
    fig.savefig(path, dpi=DPI)
    return path


def plot_router_pca(pca: dict[str, dict], path: Path) -> Path:
    """Fig. 3: per router the expert outputs of one layer on their first two principal components."""
    fig = new_figure(figsize=(WIDTH, WIDTH / len(pca) * 0.9 + 0.4), layout="constrained")
    axes = fig.subplots(1, len(pca), squeeze=False)[0]
    for ax, (router, entry) in zip(axes, pca.items(), strict=True):
        points, experts = torch.tensor(entry["points"]), torch.tensor(entry["experts"])
        for expert in range(int(experts.max()) + 1):
            chosen = points[experts == expert]
            ax.scatter(chosen[:, 0], chosen[:, 1], s=4, alpha=0.6, label=f"expert {expert}")
        score = "n/a" if entry["separation"] is None else f"{entry['separation']:.2f}"
        ax.set_title(f"{router}: {short_name(entry['layer'])}, separation {score}", fontsize=LABEL_SIZE)
        ax.tick_params(labelsize=TICK_SIZE)
    axes[0].legend(fontsize=TICK_SIZE - 1, markerscale=2)
    fig.suptitle("Expert outputs on unseen MMLU tokens, PCA (first seed)", fontsize=TITLE_SIZE)
    fig.savefig(path, dpi=DPI)
    return path


def routing_markdown(summary: dict) -> str:
    """The collapse table and the expert-share tables of ``routing.json`` as Markdown."""

    def interval(stat: dict) -> str:
        return f"{stat['value']:.3f} [{stat['low']:.3f}, {stat['high']:.3f}]"

    lines = [
        "# Routing on unseen MMLU subjects",
        "",
        "Mean over seeds of each example's routing distribution; 95% bootstrap intervals over examples.",
        "",
        "| router | examples | entropy of mean routing | top-expert share (expert) | mean per-example entropy "
        "| PCA separation |",
        "|---|---|---|---|---|---|",
    ]
    for router, entry in summary["routers"].items():
        c, separation = entry["collapse"], summary["pca_separation"][router]["separation"]
        lines.append(
            f"| {router} | {entry['examples']} | {interval(c['entropy'])} | {interval(c['top_share'])} "
            f"({c['top_expert']}) | {interval(c['example_entropy'])} | "
            f"{'n/a' if separation is None else f'{separation:.2f}'} |"
        )
    lines += [
        "",
        "## Per layer, each cell",
        "",
        "Each routed layer's own mean routing distribution, averaged over layers (expert e of one layer is not",
        "expert e of another: a collapse onto a different expert per layer shows here, not above).",
        "",
        "| router | cell | entropy per layer | top-expert share per layer | layers with one expert > 90% |",
        "|---|---|---|---|---|",
    ]
    for router, entry in summary["routers"].items():
        for cell, seed in zip(entry["cells"], entry["per_seed"], strict=True):
            c = seed["collapse_per_layer"]
            collapsed = f"{len(seed['layer_collapse']['layers'])} of {c['layers']}"
            lines.append(
                f"| {router} | {Path(cell).parent.name} | {interval(c['entropy'])} | {interval(c['top_share'])} "
                f"| {collapsed} |"
            )
    for router, entry in summary["routers"].items():
        experts = len(next(iter(entry["expert_share"].values())))
        lines += ["", f"## Expert share: {router}", "", "| subject | " + " | ".join(map(str, range(experts))) + " |"]
        lines.append("|---" * (experts + 1) + "|")
        lines += [f"| {s} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for s, row in entry["expert_share"].items()]
    return "\n".join(lines) + "\n"


__all__ = ["UNSEEN_NAME", "analyze_unseen", "plot_expert_share", "plot_router_pca", "summarize_routing_study"]
