"""Per-task expert usage accumulated from the router weights that routed layers record.

A routed layer stores its router weights g (batch, seq, experts) in ``RoutingState.routing`` when
``record_routing`` is on. :class:`RouterUsage` folds those weights into running sums per
(layer, task, expert), counting only non-padding tokens, so usage over a whole dataset (or over a
training step) costs two small tensor sums per layer and batch and no host synchronisation until the
numbers are read.

Statistics (all per adapted layer):

- **usage[task, e]**: mean over the task's non-padding tokens of expert e's share of the router
  weight, ``g_e / sum_j g_j`` (for a softmax router this is g_e itself; for top-k gates that do not
  sum to one it is the share of the gate mass). Each task's row sums to 1.
- **load[e]**: the same mean over all tokens of all tasks (what one expert carries overall).
- **load entropy**: ``-sum_e load_e log load_e / log E``, in [0, 1]: 1 means all E experts carry the
  same share, 0 means one expert carries everything.
- **collapse**: a layer whose largest load share exceeds a threshold (0.9 by default): the router
  sends almost every token to one expert, so the other experts barely train.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch

OTHER = "<no task>"  # group of examples with task id -1 (unseen) or without task ids


class RouterUsage:
    """Running sums of router-weight shares per (layer, task group, expert).

    Group ``t < T`` is task ``t`` of ``tasks``; group ``T`` (named ``"<no task>"``) collects the
    examples routed with task id -1 or without task ids.
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = list(tasks)
        self.weight_sums: dict[str, torch.Tensor] = {}  # layer -> (T + 1, E)
        self.token_counts: dict[str, torch.Tensor] = {}  # layer -> (T + 1,)

    @property
    def groups(self) -> list[str]:
        return [*self.tasks, OTHER]

    def __bool__(self) -> bool:
        return bool(self.weight_sums)

    def add(
        self, routing: Mapping[str, torch.Tensor], task_ids: torch.Tensor | None, attention_mask: torch.Tensor | None
    ) -> None:
        """Fold one forward's recorded router weights in.

        Args:
            routing: layer name -> router weights (batch, seq, E), or (batch, E) for a router that
                picks per example (counted once per example).
            task_ids: (batch,) task indices as the model resolved them (``RoutingState.task_ids``),
                -1 for unseen; None puts every example in the ``"<no task>"`` group.
            attention_mask: (batch, seq), 1 for real tokens; None counts every position.
        """
        for name, weights in routing.items():
            weights = weights.detach()
            batch, experts = weights.shape[0], weights.shape[-1]
            shares = weights.reshape(batch, -1, experts).to(torch.float64)
            shares = shares / shares.sum(-1, keepdim=True).clamp_min(1e-30)
            mask = _token_mask(attention_mask, shares, name)
            groups = self._groups(task_ids, batch, shares.device)
            if name not in self.weight_sums:
                self.weight_sums[name] = shares.new_zeros(len(self.tasks) + 1, experts)
                self.token_counts[name] = shares.new_zeros(len(self.tasks) + 1)
            self.weight_sums[name].index_add_(0, groups, (shares * mask.unsqueeze(-1)).sum(1))
            self.token_counts[name].index_add_(0, groups, mask.sum(1))

    def _groups(self, task_ids: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        other = len(self.tasks)
        if task_ids is None:
            return torch.full((batch,), other, dtype=torch.long, device=device)
        task_ids = task_ids.to(device).long()
        return torch.where(task_ids < 0, torch.full_like(task_ids, other), task_ids)

    def reduce(self, reducer: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace the sums by ``reducer(sums)`` in one call (e.g. a sum across data-parallel ranks)."""
        names = sorted(self.weight_sums)
        if not names:
            return
        parts = [self.weight_sums[n].flatten() for n in names] + [self.token_counts[n] for n in names]
        reduced = reducer(torch.cat(parts))
        offset = 0
        for store in (self.weight_sums, self.token_counts):
            for name in names:
                size = store[name].numel()
                store[name] = reduced[offset : offset + size].reshape(store[name].shape)
                offset += size

    def reset(self) -> None:
        self.weight_sums.clear()
        self.token_counts.clear()

    def usage(self) -> dict[str, torch.Tensor]:
        """layer -> (T + 1, E) mean share per task group; NaN rows for groups with no tokens."""
        return {name: (sums / self.token_counts[name].unsqueeze(-1)).cpu() for name, sums in self.weight_sums.items()}

    def load(self) -> dict[str, torch.Tensor]:
        """layer -> (E,) mean share over every counted token."""
        return {
            name: (sums.sum(0) / self.token_counts[name].sum().clamp_min(1)).cpu()
            for name, sums in self.weight_sums.items()
        }

    def tokens_per_group(self) -> dict[str, int]:
        """Counted tokens per task group (taken from the first layer; every layer sees the same tokens)."""
        if not self.token_counts:
            return {}
        counts = next(iter(self.token_counts.values())).cpu()
        return {group: int(counts[i]) for i, group in enumerate(self.groups)}


def _token_mask(attention_mask: torch.Tensor | None, shares: torch.Tensor, name: str) -> torch.Tensor:
    batch, positions = shares.shape[:2]
    if attention_mask is None or positions == 1:
        return shares.new_ones(batch, positions)
    if attention_mask.shape != (batch, positions):
        raise ValueError(
            f"layer {name} recorded router weights for {positions} positions per example but the "
            f"attention mask has shape {tuple(attention_mask.shape)}; pass the mask of the batch that "
            "was forwarded (batch, seq)"
        )
    return attention_mask.to(shares.device, shares.dtype)


def load_entropy(load: torch.Tensor) -> float:
    """Normalised entropy of a load vector (E,): 1 = every expert equal, 0 = one expert only."""
    experts = load.numel()
    if experts < 2:
        return 1.0
    p = load.double().clamp_min(0)
    p = p / p.sum().clamp_min(1e-30)
    entropy = -(p * p.clamp_min(1e-30).log()).sum().item()
    return entropy / math.log(experts)


def find_collapse(load: Mapping[str, torch.Tensor], threshold: float) -> list[dict]:
    """Layers whose largest expert share exceeds ``threshold``: ``{"layer", "expert", "share"}``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"collapse threshold must be in (0, 1], got {threshold}")
    collapsed = []
    for name, shares in load.items():
        share, expert = shares.max(0)
        if shares.numel() > 1 and share.item() > threshold:
            collapsed.append({"layer": name, "expert": int(expert), "share": float(share)})
    return collapsed


def collapse_warning(collapsed: list[dict], total_layers: int, threshold: float) -> str | None:
    """A one-line warning naming how many layers collapsed, or None."""
    if not collapsed:
        return None
    worst = max(collapsed, key=lambda c: c["share"])
    return (
        f"router collapse in {len(collapsed)} of {total_layers} routed layers: one expert takes more than "
        f"{threshold:.0%} of the tokens (worst: {worst['layer']}, expert {worst['expert']} with "
        f"{worst['share']:.1%}); the other experts barely train. A higher router temperature or a "
        "load-balancing term usually helps"
    )
