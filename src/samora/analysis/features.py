"""Expert features (for the PCA figure) and learned task-gate values.

**Which expert features.** The paper's figure shows expert features forming separated clusters with
the semantic router and entangled ones with an MLP router. We take, for a sample of real
(non-padding) tokens x reaching a layer, every expert's own output ``e_i(x) = B_i (S A x)``: what
expert i would add to that token if the router gave it the whole weight (before the router weights
and the task gate). Outputs on real tokens show what the experts *do* with the representations the
model actually produces; the raw weights B_i would also count directions that real inputs never
excite, and are all zero at initialisation. If the experts learned distinct transforms, the points of
different experts fall into separate clusters; if they learned the same one, the clusters overlap.

**Separation score.** ``between / within``: the mean squared distance of each expert's centroid to the
overall centroid, over the mean squared distance of each point to its own expert's centroid, in the
full d_out space (a Fisher ratio). 0 means the experts are indistinguishable; values well above 1
mean separated clusters. It is None when all outputs are zero (B = 0 at initialisation).

A method exposes its experts through the layer hook ``AdapterLayer.expert_outputs(x) -> (..., N,
d_out)`` and its task gate through ``AdapterLayer.task_gate(task_ids)``; both return None for a
method without them, which the analysis then leaves out.
"""

from __future__ import annotations

import torch
from torch import nn

from samora.inject import AdapterHandle, adapter_of
from samora.methods import AdapterLayer


def expert_outputs(layer: AdapterLayer, x: torch.Tensor) -> torch.Tensor | None:
    """Each expert's output on inputs x (..., d_in): (..., N, d_out), or None if the method has none."""
    return layer.expert_outputs(x)


def pca_2d(points: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Project (M, D) points on their first two principal components: ((M, 2), explained ratios)."""
    centred = points.double() - points.double().mean(0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    variance = singular.square()
    total = variance.sum()
    components = min(2, vh.shape[0])
    projected = centred @ vh[:components].T
    if components < 2:
        projected = torch.cat([projected, projected.new_zeros(projected.shape[0], 2 - components)], 1)
    ratios = (variance[:2] / total).tolist() if total > 0 else [0.0, 0.0]
    return projected.float(), ratios


def separation(outputs: torch.Tensor) -> float | None:
    """Fisher ratio of expert clusters for outputs (tokens, N, d_out); see the module docstring."""
    points = outputs.double()
    centroids = points.mean(0)  # (N, d_out)
    overall = centroids.mean(0)
    between = (centroids - overall).square().sum(-1).mean()
    within = (points - centroids).square().sum(-1).mean()
    if within == 0:
        return None if between == 0 else float("inf")
    return float(between / within)


def task_gate_values(model: nn.Module) -> dict[str, dict[str, float]]:
    """layer -> {task name: g_task, "<unseen>": g for task id -1} for layers with a task gate.

    g_task = sigmoid(w_gate . e_t + b_gate) (SAMoRA eq. 6) as the layer computes it; layers whose
    method has no task gate (or SAMoRA with ``scaling=False``, where g_task = 1) are left out.
    """
    return gate_values_of(adapter_of(model))


@torch.no_grad()
def gate_values_of(handle: AdapterHandle) -> dict[str, dict[str, float]]:
    """:func:`task_gate_values` from the model's adapter handle."""
    tasks = handle.config.tasks
    values = {}
    for name, layer in handle.layers.items():
        if not tasks:
            continue
        ids = torch.arange(-1, len(tasks), device=layer.device)
        gates = layer.task_gate(ids)
        if gates is None:
            continue
        gates = gates.float().cpu().tolist()
        values[name] = {"<unseen>": gates[0], **dict(zip(tasks, gates[1:], strict=True))}
    return values
