"""The one place where per-example task ids live during a step.

``model(..., task_ids=...)`` and ``model.generate(..., task_ids=...)`` reach the adapter layers
through a :class:`RoutingState` shared by every layer of one adapted model. A forward pre-hook on
the top-level model pops ``task_ids`` from the call, validates it, and stores it here; the layers
read it. The state is *not* cleared when the forward returns: gradient checkpointing recomputes
layers during the backward pass, after the forward has finished, and the recomputation must see the
same task ids (non-reentrant and reentrant checkpointing alike). The next top-level forward replaces
it. Calling an inner submodule directly bypasses the hook and sees whatever the last top-level call
stored, so always call the top-level model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

UNSEEN_TASK = -1


@dataclass
class RoutingState:
    """Per-model routing state, shared by reference with every adapter layer.

    Attributes:
        task_ids: LongTensor (batch,) of task indices, ``-1`` for an unseen task; ``None`` when the
            call gave no task ids.
        attention_mask: the call's ``attention_mask`` (batch, seq), 1 on real tokens, or ``None``.
        forward_count: number of top-level forwards so far; a layer that sees the same count twice is
            being recomputed by gradient checkpointing (SMoRA uses this to count its load once).
        record_routing: when True, routed layers store their router weights in ``routing``.
        routing: layer name -> detached router weights of the last forward (batch, seq, experts).
        constants: while the parameters cannot change (inside ``generate``), a dict that keeps
            values the layers compute from their parameters alone, ``(layer name, what) -> tensor``,
            so each is computed once per call instead of once per generated token; else ``None``.
    """

    task_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    forward_count: int = 0
    record_routing: bool = False
    routing: dict[str, torch.Tensor] = field(default_factory=dict)
    constants: dict[tuple[str, str], Any] | None = None

    def task_ids_for(self, x: torch.Tensor) -> torch.Tensor | None:
        """The task ids on ``x``'s device, checked against its leading (batch) dimension."""
        if self.task_ids is None:
            return None
        if x.shape[0] != self.task_ids.shape[0]:
            raise ValueError(
                f"task_ids has {self.task_ids.shape[0]} entries but an adapted layer received a batch "
                f"of {x.shape[0]}; give one task id per example (shape (batch,))"
            )
        return self.task_ids.to(x.device, non_blocking=True)

    def token_mask_for(self, x: torch.Tensor) -> torch.Tensor | None:
        """Which tokens of ``x`` (batch, seq, features) are real: a bool (batch, seq) on x's device.

        ``None`` (every token counts) when the call gave no 2-d ``attention_mask`` or the mask does
        not have x's (batch, seq) shape (e.g. cached generation, or an encoder-decoder's decoder).
        """
        mask = self.attention_mask
        if mask is None or mask.dim() != 2 or x.dim() != 3 or tuple(mask.shape) != tuple(x.shape[:2]):
            return None
        return mask.to(x.device, non_blocking=True).bool()


def resolve_task_ids(
    task_ids: torch.Tensor | Sequence[str | int] | str | int | None,
    tasks: Sequence[str],
    batch_size: int | None,
    *,
    allow_unseen: bool,
    allow_expand: bool = False,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """Turn what the user passed as ``task_ids`` into a LongTensor (batch,), or ``None``.

    Accepts a LongTensor (batch,) or a scalar, a task name or index (same task for every example),
    or a sequence of names and/or indices. ``-1`` means an unseen task. With ``allow_expand`` (set
    during ``generate``, which repeats every example once per beam but cannot repeat a Python list)
    a sequence of B entries for a batch of B * k is repeated k times per entry, in the order
    ``generate`` uses.
    """
    if task_ids is None:
        return None
    known = f"known tasks (id: name): {dict(enumerate(tasks))}"
    if isinstance(task_ids, torch.Tensor):
        if task_ids.is_floating_point() or task_ids.is_complex() or task_ids.dtype == torch.bool:
            raise TypeError(f"task_ids must be an integer tensor, got dtype {task_ids.dtype}")
        ids = task_ids.long().reshape(-1) if task_ids.dim() <= 1 else None
        if ids is None:
            raise ValueError(f"task_ids must have shape (batch,), got {tuple(task_ids.shape)}")
        if task_ids.dim() == 0:
            ids = ids.expand(batch_size or 1)
    else:
        items = [task_ids] if isinstance(task_ids, (str, int)) else list(task_ids)
        ids = torch.tensor([_one_id(item, tasks, known) for item in items], dtype=torch.long)
        if isinstance(task_ids, (str, int)) and batch_size:
            ids = ids.expand(batch_size)
        elif allow_expand and batch_size and len(ids) and batch_size % len(ids) == 0:
            ids = ids.repeat_interleave(batch_size // len(ids))
    if batch_size is not None and ids.shape[0] != batch_size:
        raise ValueError(f"task_ids has {ids.shape[0]} entries for a batch of {batch_size}")
    if ids.numel():
        low, high = int(ids.min()), int(ids.max())
        if high >= len(tasks) or low < UNSEEN_TASK:
            raise ValueError(f"task id out of range [{low}, {high}]; {known}; -1 means unseen")
        if low == UNSEEN_TASK and not allow_unseen:
            raise ValueError(f"this method cannot route an unseen task (id -1); {known}")
    return ids.to(device) if device is not None else ids


def _one_id(item: str | int, tasks: Sequence[str], known: str) -> int:
    if isinstance(item, str):
        if item not in tasks:
            raise ValueError(f"unknown task {item!r}; {known}")
        return tasks.index(item)
    if isinstance(item, bool) or not isinstance(item, int):
        raise TypeError(f"task ids must be task names or ints, got {item!r}")
    return item
