"""Routing on tasks the adapter never saw (the paper's Fig. 5): per-example expert distributions,
expert shares per subject, and router collapse with bootstrap confidence intervals.

Examples of unseen tasks go through the model with task id -1 (SAMoRA's unseen-task route: the task
gate of the mean task embedding). For every example, :class:`ExampleRouting` keeps its **routing
distribution** p(x) in R^E: the mean, over the routed layers and the example's non-padding tokens, of
each expert's share of the router weight ``g_e / sum_j g_j`` (as :mod:`samora.analysis.usage` defines
usage). Each p(x) sums to 1.

Statistics over a set of n examples with distributions p_1..p_n:

- **expert share** of a subject: ``mean_i p_i`` over the subject's examples (one row of Fig. 5);
- **mean routing distribution** ``p_bar = mean_i p_i`` over all examples;
- **entropy**: ``H(p_bar) / log E`` in [0, 1]: 1 = every expert carries the same share overall, 0 =
  one expert carries everything (collapse);
- **top share**: ``max_e p_bar_e``, the share of the most used expert (1/E when uniform, 1 when
  collapsed), and which expert that is;
- **per layer**: the same entropy and top share of each layer's own mean distribution, averaged over
  the layers (:func:`collapse_statistics` of the (examples, layers, E) distributions): the layer-mean
  distribution can hide a collapse onto a different expert in each layer, these cannot;
- **95% bootstrap intervals** of all of them over examples: resample the n examples with replacement
  ``samples`` times, recompute p_bar and the statistic, take the 2.5th and 97.5th percentiles. The top
  share is the largest share of each resample (whichever expert that is).

The mean distribution says whether the router *as a whole* uses all experts. It does not say whether
single examples are routed sharply: the **mean per-example entropy** ``mean_i H(p_i) / log E`` is
reported too (low: each example picks few experts; high: each spreads its weight).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch


class ExampleRouting:
    """Routing distributions per example, in the order the examples were forwarded.

    A recorder for :func:`samora.analysis.analyze` (``recorders=[ExampleRouting()]``): its
    :meth:`add` receives each forward's recorded router weights.
    """

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []

    def add(
        self, routing: Mapping[str, torch.Tensor], task_ids: torch.Tensor | None, attention_mask: torch.Tensor | None
    ) -> None:
        """Fold one forward in: per example, the mean over layers and real tokens of the expert shares.

        Args:
            routing: layer name -> router weights (batch, seq, E) (or (batch, E)); every layer must
                have the same number of experts E.
            task_ids: unused (the caller knows each example's subject); part of the recorder interface.
            attention_mask: (batch, seq), 1 for real tokens; None counts every position.
        """
        if not routing:
            return
        widths = {weights.shape[-1] for weights in routing.values()}
        if len(widths) != 1:
            raise ValueError(
                f"per-example routing needs the same number of experts in every routed layer, got {sorted(widths)}"
            )
        per_layer = [_example_shares(weights, attention_mask) for weights in routing.values()]
        self.parts.append(torch.stack(per_layer, 1).cpu())

    def layer_distributions(self) -> torch.Tensor:
        """(examples, layers, E) float64: each example's routing distribution in each routed layer."""
        if not self.parts:
            raise ValueError("no routing was recorded: the model has no router (or no batch was analysed)")
        return torch.cat(self.parts)

    def distributions(self) -> torch.Tensor:
        """(examples, E) float64: each row the example's routing distribution, the mean over layers (sums to 1)."""
        return self.layer_distributions().mean(1)


def _example_shares(weights: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(batch, E): per example, the mean expert share over its real tokens."""
    batch, experts = weights.shape[0], weights.shape[-1]
    shares = weights.detach().reshape(batch, -1, experts).double()
    shares = shares / shares.sum(-1, keepdim=True).clamp_min(1e-30)
    positions = shares.shape[1]
    if attention_mask is None or positions == 1:
        mask = shares.new_ones(batch, positions)
    else:
        mask = attention_mask.to(shares.device, shares.dtype)
    return (shares * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)


def expert_shares(distributions: torch.Tensor, labels: Sequence[str]) -> dict[str, list[float]]:
    """subject -> mean routing distribution over the subject's examples, subjects in first-seen order."""
    if len(labels) != len(distributions):
        raise ValueError(f"{len(labels)} labels for {len(distributions)} routed examples; give one label per example")
    shares = {}
    for subject in dict.fromkeys(labels):
        rows = torch.tensor([label == subject for label in labels])
        shares[subject] = distributions[rows].mean(0).tolist()
    return shares


def normalised_entropy(p: torch.Tensor) -> torch.Tensor:
    """``H(p) / log E`` over the last axis (E experts); 1 for E = 1."""
    experts = p.shape[-1]
    if experts < 2:
        return p.new_ones(p.shape[:-1])
    p = p.clamp_min(0)
    return -(p * p.clamp_min(1e-30).log()).sum(-1) / math.log(experts)


def collapse_statistics(
    distributions: torch.Tensor, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, object]:
    """Entropy and top-expert share of the mean routing distribution, with bootstrap intervals over
    examples (see the module docstring); also the mean per-example entropy with its interval.

    ``distributions``: (examples, E), or (examples, layers, E) for the statistics of each layer's own
    mean distribution averaged over the layers (``mean_l H(p_bar_l) / log E``, ``mean_l max_e
    p_bar_l,e``): expert e of one layer is not expert e of another, so a router that collapses onto a
    different expert in every layer looks diverse in the layer-mean distribution but not here.
    """
    if distributions.ndim not in (2, 3) or len(distributions) == 0:
        raise ValueError(
            "expected (examples, experts) or (examples, layers, experts) routing distributions, "
            f"got shape {tuple(distributions.shape)}"
        )
    if samples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need samples >= 1 and 0 < level < 1, got samples={samples}, level={level}")
    p = distributions.double() if distributions.ndim == 3 else distributions.double().unsqueeze(1)
    examples, layers, experts = p.shape
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(examples, (samples, examples), generator=generator)
    counts = torch.zeros(samples, examples, dtype=p.dtype).scatter_add_(
        1, picks, torch.ones_like(picks, dtype=p.dtype)
    )
    resampled = (counts @ p.reshape(examples, -1) / examples).reshape(samples, layers, experts)
    example_entropy = normalised_entropy(p).mean(1)  # (examples,)
    mean = p.mean(0)  # (layers, E)
    statistics = {
        "examples": examples,
        "layers": layers,
        "experts": experts,
        "entropy": _with_interval(normalised_entropy(mean).mean(), normalised_entropy(resampled).mean(1), level),
        "top_share": _with_interval(mean.max(-1).values.mean(), resampled.max(-1).values.mean(1), level),
        "example_entropy": _with_interval(example_entropy.mean(), counts @ example_entropy / examples, level),
        "bootstrap": {"samples": samples, "seed": seed, "level": level},
    }
    if layers == 1:
        statistics |= {"mean_distribution": mean[0].tolist(), "top_expert": int(mean[0].argmax())}
    return statistics


def _with_interval(value: torch.Tensor, resampled: torch.Tensor, level: float) -> dict[str, float]:
    tail = (1.0 - level) / 2
    low, high = torch.quantile(resampled, torch.tensor([tail, 1.0 - tail], dtype=resampled.dtype)).tolist()
    return {"value": float(value), "low": low, "high": high}


__all__ = ["ExampleRouting", "collapse_statistics", "expert_shares", "normalised_entropy"]
