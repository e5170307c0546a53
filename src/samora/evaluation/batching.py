"""Batch plumbing shared by the two scoring protocols: padded token tensors, chunks, task ids.

Both protocols send lists of token ids to the model in batches: :func:`right_padded` puts each
row's tokens at its start (log-likelihood forwards), :func:`left_padded` at its end (generation
and cached stems, so every row's last token sits in the last column). :func:`routing_inputs`
turns the rows' task ids into the ``task_ids`` (batch,) argument a samora-adapted model takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def context_window(model: Any, default: int = 2048) -> int:
    """The most tokens the model attends to (``max_position_embeddings``), else ``default``."""
    return int(getattr(model.config, "max_position_embeddings", None) or default)


def right_padded(rows: Sequence[Sequence[int]], width: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input ids and attention mask (len(rows), width), each row's tokens at its start."""
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, tokens in enumerate(rows):
        input_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        attention_mask[row, : len(tokens)] = 1
    return input_ids, attention_mask


def left_padded(rows: Sequence[Sequence[int]], width: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input ids and attention mask (len(rows), width), each row's tokens at its end."""
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, tokens in enumerate(rows):
        input_ids[row, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
        attention_mask[row, width - len(tokens) :] = 1
    return input_ids, attention_mask


def routing_inputs(task_ids: Sequence[int | None], device: torch.device) -> dict[str, torch.Tensor]:
    """``{"task_ids": LongTensor (batch,)}``, or nothing when the rows carry no task id."""
    if not task_ids or task_ids[0] is None:
        return {}
    return {"task_ids": torch.tensor(task_ids, dtype=torch.long, device=device)}


def chunks(items: list, size: int) -> list[list]:
    """``items`` in consecutive slices of ``size`` (the last may be shorter)."""
    return [items[start : start + size] for start in range(0, len(items), size)]
