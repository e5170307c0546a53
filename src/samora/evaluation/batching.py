"""Batch plumbing shared by the two scoring protocols: padded token tensors, chunks, task ids.

Both protocols send lists of token ids to the model in batches: :func:`right_padded` puts each
row's tokens at its start (log-likelihood forwards), :func:`left_padded` at its end (generation
and cached stems, so every row's last token sits in the last column). :func:`routing_inputs`
turns the rows' task ids into the ``task_ids`` (batch,) argument a samora-adapted model takes.
:func:`generate_batched` is the decoding loop both generation protocols share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


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


def cut_to_room(desc: str, encoded: list[list[int]], room: int, budget: str) -> list[list[int]]:
    """Each prompt's token ids cut from the left to ``room`` tokens (the context window less the
    generation budget, named ``budget`` in the warning that counts the prompts cut)."""
    cut = sum(len(ids) > room for ids in encoded)
    if cut:
        logger.warning(
            "%s: %d of %d prompts exceed the model's context window less %s (%d tokens); they were cut from the left",
            desc,
            cut,
            len(encoded),
            budget,
            room,
        )
    return [ids[-room:] for ids in encoded]


def generate_batched(
    model: Any,
    encoded: list[list[int]],
    order: list[int],
    generation_config: Any,
    *,
    batch_size: int,
    task_id: int | None,
    progress: bool,
    desc: str,
    stopping_criteria: Callable[[int], Any] | None = None,
) -> list[list[int]]:
    """The token ids each prompt generated (prompt excluded): ``model.generate`` with ``generation_config``
    on left-padded batches of ``batch_size`` prompts taken in ``order``, routed to ``task_id``.
    ``stopping_criteria(width)``, if given, builds a batch's criteria from its padded prompt width."""
    device, pad = next(model.parameters()).device, generation_config.pad_token_id
    generated: list[list[int]] = [[] for _ in encoded]
    for batch in tqdm(chunks(order, batch_size), desc=desc, disable=not progress, total=-(-len(order) // batch_size)):
        width = max(len(encoded[i]) for i in batch)
        input_ids, attention_mask = left_padded([encoded[i] for i in batch], width, pad)
        extra = {"stopping_criteria": stopping_criteria(width)} if stopping_criteria else {}
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=generation_config,
            **extra,
            **routing_inputs([task_id] * len(batch), device),
        )
        for i, tokens in zip(batch, output[:, width:].tolist()):
            generated[i] = tokens
    return generated
