"""``analyze``: run batches through an adapted model and write the paper's diagnostic figures + JSON."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from samora.analysis.features import expert_outputs, pca_2d, separation, task_gate_values
from samora.analysis.plots import block_and_kind, plot_expert_pca, plot_task_gates, plot_usage
from samora.analysis.usage import OTHER, RouterUsage, collapse_warning, find_collapse, load_entropy
from samora.inject import adapter_of

RESULTS_NAME = "analysis.json"
PCA_POINTS_NAME = "expert_pca_points.json"
MODEL_INPUTS = ("input_ids", "attention_mask", "task_ids")


class RouterCollapseWarning(UserWarning):
    """One expert takes almost all tokens in some routed layer."""


def analyze(
    model: nn.Module,
    batches: Iterable[Mapping[str, torch.Tensor]],
    output_dir: str | os.PathLike,
    *,
    collapse_threshold: float = 0.9,
    heatmap_layers: int = 12,
    pca_layers: Sequence[str] | None = None,
    pca_tokens: int = 256,
    max_batches: int | None = None,
    recorders: Sequence = (),
    save_pca_points: bool = False,
) -> dict:
    """Expert usage, router collapse, expert-feature PCA and task gates of an adapted model.

    Args:
        model: a model adapted by :func:`samora.get_model` (or loaded by :func:`samora.load_adapter`).
        batches: collated batches with ``input_ids``, optionally ``attention_mask`` (padding is not
            counted) and ``task_ids`` (per-task statistics; without them everything counts as
            ``"<no task>"``), e.g. ``DataLoader(dataset, batch_size=8, collate_fn=collator)``.
            Other keys (labels...) are ignored. The model runs in eval mode without gradients.
        output_dir: folder for ``analysis.json`` and the PNG figures (created if needed).
        collapse_threshold: a layer counts as collapsed when one expert's load share exceeds it.
        heatmap_layers: at most this many layers get their own usage heatmap (evenly spaced, the
            last one included); the mean over all layers is always drawn.
        pca_layers: module names for the expert PCA; default: the adapted modules of the last block.
        pca_tokens: non-padding tokens sampled (the first ones met) per PCA layer.
        max_batches: stop after this many batches.
        recorders: further accumulators of the recorded router weights, each with the method
            ``add(routing, task_ids, attention_mask)`` of :class:`RouterUsage` (e.g.
            :class:`~samora.analysis.unseen.ExampleRouting`), fed after every forward.
        save_pca_points: also write the PCA's points (``expert_pca_points.json``: per layer the
            2-D points and each point's expert) for figures that combine several analyses.

    Returns:
        The results written to ``analysis.json`` (statistics are defined in
        :mod:`samora.analysis.usage` and :mod:`samora.analysis.features`), with ``"files"`` naming
        the written paths. A collapse also raises a :class:`RouterCollapseWarning`.
    """
    handle = adapter_of(model)
    find_collapse({}, collapse_threshold)  # validate the threshold before any work
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    usage = RouterUsage(handle.config.tasks)
    pca_names = _pca_layer_names(handle, pca_layers)
    recorders = [usage, *recorders]
    samples, num_batches = _run(model, handle, batches, recorders, pca_names, pca_tokens, max_batches)
    if num_batches == 0:
        raise ValueError("analyze got no batches; pass an iterable of collated batches (dicts with input_ids)")

    projections = _expert_pca(handle, samples)
    gates = task_gate_values(model)
    if not (usage or projections or gates):
        raise ValueError(
            f"method '{handle.config.method}' records no router weights, has no expert outputs and no task "
            "gate: there is nothing to analyze (analysis needs a routed or task-gated method)"
        )
    results = _results(handle, num_batches, usage, collapse_threshold, projections, gates, output_dir)
    results["files"].update(_plot_figures(usage, projections, gates, heatmap_layers, output_dir))
    if save_pca_points and projections:
        results["files"]["expert_pca_points"] = str(_write_pca_points(projections, output_dir / PCA_POINTS_NAME))
    results = _finite(results)
    (output_dir / RESULTS_NAME).write_text(json.dumps(results, indent=2) + "\n")
    if results["collapse"]["warning"]:
        warnings.warn(results["collapse"]["warning"], RouterCollapseWarning, stacklevel=2)
    return results


def _results(
    handle, num_batches: int, usage: RouterUsage, threshold: float, projections: dict, gates: dict, output_dir: Path
) -> dict:
    """The statistics for ``analysis.json`` (the PCA without its points), before any figure is drawn."""
    return {
        "method": handle.config.method,
        "tasks": handle.config.tasks,
        "num_batches": num_batches,
        **_routing_results(usage, threshold),
        "expert_pca": {
            n: {k: v for k, v in p.items() if k not in ("points", "experts")} for n, p in projections.items()
        }
        or None,
        "task_gates": gates or None,
        "files": {"json": str(output_dir / RESULTS_NAME)},
    }


def _plot_figures(
    usage: RouterUsage, projections: dict[str, dict], gates: dict, heatmap_layers: int, output_dir: Path
) -> dict[str, str]:
    """Draw the figures the results allow; figure name -> written path."""
    files = {}
    if usage and _same_width(usage.usage()):
        files["expert_usage"] = str(_plot_usage(usage, heatmap_layers, output_dir / "expert_usage.png"))
    if projections:
        files["expert_pca"] = str(plot_expert_pca(projections, output_dir / "expert_pca.png"))
    if gates:
        files["task_gates"] = str(plot_task_gates(gates, output_dir / "task_gates.png"))
    return files


def _write_pca_points(projections: dict[str, dict], path: Path) -> Path:
    """layer -> {"points": [[pc1, pc2], ...] (4 significant digits), "experts": [expert of each point]}."""
    points = {
        name: {
            "points": [[float(f"{value:.4g}") for value in point] for point in entry["points"].tolist()],
            "experts": entry["experts"].tolist(),
        }
        for name, entry in projections.items()
    }
    path.write_text(json.dumps(points) + "\n")
    return path


def _run(model, handle, batches, recorders, pca_names, pca_tokens, max_batches):
    """Forward every batch with routing recorded; sample layer inputs for the PCA layers."""
    samples: dict[str, list[torch.Tensor]] = {name: [] for name in pca_names}
    current_mask: list[torch.Tensor | None] = [None]

    def keep_inputs(name):
        def hook(_module, args):
            taken = sum(len(s) for s in samples[name])
            if taken >= pca_tokens:
                return
            x, mask = args[0].detach(), current_mask[0]
            tokens = x[mask.bool()] if mask is not None and mask.shape == x.shape[:2] else x.reshape(-1, x.shape[-1])
            samples[name].append(tokens[: pca_tokens - taken].float().cpu())

        return hook

    hooks = [handle.layers[name].register_forward_pre_hook(keep_inputs(name)) for name in pca_names]
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    handle.state.record_routing = True
    num_batches = 0
    try:
        with torch.no_grad():
            for batch in batches:
                if max_batches is not None and num_batches >= max_batches:
                    break
                inputs = _model_inputs(batch, device)
                current_mask[0] = inputs.get("attention_mask")
                model(**inputs)
                for recorder in recorders:
                    recorder.add(handle.state.routing, handle.state.task_ids, inputs.get("attention_mask"))
                num_batches += 1
    finally:
        handle.state.record_routing = False
        handle.state.routing.clear()
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return {name: torch.cat(parts) for name, parts in samples.items() if parts}, num_batches


def _model_inputs(batch: Mapping, device: torch.device) -> dict:
    if "input_ids" not in batch:
        raise ValueError(f"each batch needs 'input_ids' (got keys {sorted(batch)}); collate the dataset first")
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch and batch[k] is not None}
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def _plot_usage(usage: RouterUsage, heatmap_layers: int, path: Path) -> Path:
    groups, rows = _groups_with_tokens(usage)
    table = {name: shares[rows] for name, shares in usage.usage().items()}
    shown = _evenly_spaced(sorted(table, key=lambda n: block_and_kind(n)[0]), heatmap_layers)
    mean = torch.stack(list(table.values())).mean(0)
    return plot_usage({name: table[name] for name in shown}, mean, groups, path)


def _groups_with_tokens(usage: RouterUsage) -> tuple[list[str], list[int]]:
    """The task groups that had tokens, and their rows in the usage tables."""
    groups = [group for group, count in usage.tokens_per_group().items() if count > 0]
    return groups, [usage.groups.index(group) for group in groups]


def _routing_results(usage: RouterUsage, threshold: float) -> dict:
    load = usage.load()
    collapsed = find_collapse(load, threshold)
    collapse = {
        "threshold": threshold,
        "layers": collapsed,
        "warning": collapse_warning(collapsed, len(load), threshold),
    }
    if not usage:
        return {"routing": None, "collapse": collapse}
    table = usage.usage()
    index = dict(zip(*_groups_with_tokens(usage), strict=True))
    entropy = {name: load_entropy(shares) for name, shares in load.items()}
    routing = {
        "tokens_per_task": {g: n for g, n in usage.tokens_per_group().items() if n > 0},
        "usage": {name: {g: u[i].tolist() for g, i in index.items()} for name, u in table.items()},
        "load": {name: shares.tolist() for name, shares in load.items()},
        "load_entropy": entropy,
        "mean_load_entropy": sum(entropy.values()) / len(entropy),
    }
    if _same_width(table):
        mean = torch.stack(list(table.values())).mean(0)
        routing["mean_usage"] = {g: mean[i].tolist() for g, i in index.items()}
    return {"routing": routing, "collapse": collapse}


def _expert_pca(handle, samples: dict[str, torch.Tensor]) -> dict[str, dict]:
    projections = {}
    for name, inputs in samples.items():
        layer = handle.layers[name]
        with torch.no_grad():
            outputs = expert_outputs(layer, inputs.to(layer.device))
        if outputs is None:
            continue
        outputs = outputs.float().cpu()  # (tokens, N, d_out)
        tokens, experts = outputs.shape[:2]
        points, ratios = pca_2d(outputs.reshape(tokens * experts, -1))
        projections[name] = {
            "points": points,
            "experts": torch.arange(experts).repeat(tokens),
            "tokens": tokens,
            "separation": separation(outputs),
            "explained_variance_ratio": ratios,
        }
    return projections


def _pca_layer_names(handle, chosen: Sequence[str] | None) -> list[str]:
    if chosen is not None:
        unknown = [n for n in chosen if n not in handle.layers]
        if unknown:
            raise ValueError(f"pca_layers {unknown} are not adapted modules; adapted: {sorted(handle.layers)[:8]}...")
        return list(chosen)
    last = max(block_and_kind(n)[0] for n in handle.layers)
    return sorted((n for n in handle.layers if block_and_kind(n)[0] == last), key=lambda n: block_and_kind(n)[0])


def _evenly_spaced(names: list[str], count: int) -> list[str]:
    """At most ``count`` names, evenly spaced, keeping the first and the last."""
    if len(names) <= count:
        return names
    if count <= 1:
        return names[-1:]
    return [names[round(i * (len(names) - 1) / (count - 1))] for i in range(count)]


def _same_width(table: dict[str, torch.Tensor]) -> bool:
    return len({u.shape for u in table.values()}) == 1


def _finite(value):
    """NaN/inf -> None so that the JSON file is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


__all__ = ["OTHER", "PCA_POINTS_NAME", "RESULTS_NAME", "RouterCollapseWarning", "analyze"]
