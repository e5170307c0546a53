"""The one place where per-example task ids live during a step.

``model(..., task_ids=...)`` and ``model.generate(..., task_ids=...)`` reach the adapter layers
through a :class:`RoutingState` shared by every layer of one adapted model. The adapted model's
bound ``forward`` (:mod:`samora.bound`) takes ``task_ids`` from the call, validates it, and stores it
here; the layers read it. The state is *not* cleared when the forward returns: gradient checkpointing recomputes
layers during the backward pass, after the forward has finished, and the recomputation must see the
same task ids (non-reentrant and reentrant checkpointing alike). The next top-level forward replaces
it. Calling an inner submodule directly bypasses that forward and sees whatever the last top-level call
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
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """Turn what the user passed as ``task_ids`` into a LongTensor (batch,), or ``None``.

    Accepts a LongTensor (batch,) or a scalar, a task name or index (same task for every example),
    or a sequence of names and/or indices. ``-1`` means an unseen task. A sequence or tensor must
    have exactly ``batch_size`` entries (when ``batch_size`` is known).
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
    if batch_size is not None and ids.shape[0] != batch_size:
        raise ValueError(f"task_ids has {ids.shape[0]} entries for a batch of {batch_size}")
    if ids.numel():
        low, high = int(ids.min()), int(ids.max())
        if high >= len(tasks) or low < UNSEEN_TASK:
            raise ValueError(f"task id out of range [{low}, {high}]; {known}; -1 means unseen")
        if low == UNSEEN_TASK and not allow_unseen:
            raise ValueError(f"this method cannot route an unseen task (id -1); {known}")
    return ids.to(device) if device is not None else ids


def resolve_generation_task_ids(
    task_ids: torch.Tensor | Sequence[str | int] | str | int | None,
    tasks: Sequence[str],
    batch_size: int | None,
    rows_per_example: int,
    *,
    allow_unseen: bool,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """``task_ids`` given to ``generate`` for an input batch of ``batch_size``, as a LongTensor (batch,).

    ``generate`` turns each example b into ``k = rows_per_example`` rows b k .. b k + k - 1 (beams or
    returned sequences) and repeats a (batch,) tensor the same way. So the ids come one per example
    (batch,), or one per row (batch * k,) where the k rows of an example must share one task (beam
    search reorders rows within an example at every step); any other length is an error.
    """
    if (
        batch_size is None
        or task_ids is None
        or isinstance(task_ids, (str, int))
        or (isinstance(task_ids, torch.Tensor) and task_ids.dim() == 0)
    ):
        return resolve_task_ids(task_ids, tasks, batch_size, allow_unseen=allow_unseen, device=device)
    ids = resolve_task_ids(task_ids, tasks, None, allow_unseen=allow_unseen)
    rows = batch_size * rows_per_example
    if rows_per_example > 1 and ids.shape[0] == rows:
        per_example = ids.reshape(batch_size, rows_per_example)
        if not torch.equal(per_example, per_example[:, :1].expand_as(per_example)):
            raise ValueError(
                f"task_ids gives one id per generated row ({rows} rows: {batch_size} examples x "
                f"{rows_per_example} beams / returned sequences), but the rows of one example differ; "
                f"the rows of an example share its task: give one id per example ({batch_size} entries)"
            )
        ids = per_example[:, 0]
    elif ids.shape[0] != batch_size:
        per_row = f" or one per generated row ({rows})" if rows_per_example > 1 else ""
        raise ValueError(
            f"task_ids has {ids.shape[0]} entries for a generate batch of {batch_size} examples; give one "
            f"id per example ({batch_size} entries){per_row}, or a single task name for all"
        )
    return ids.to(device) if device is not None else ids


def _one_id(item: str | int, tasks: Sequence[str], known: str) -> int:
    if isinstance(item, str):
        if item not in tasks:
            raise ValueError(f"unknown task {item!r}; {known}")
        return tasks.index(item)
    if isinstance(item, bool) or not isinstance(item, int):
        raise TypeError(f"task ids must be task names or ints, got {item!r}")
    return item
