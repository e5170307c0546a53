"""Batching tokenised multi-task examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from samora.data.encoding import IGNORE_INDEX


def pad_token_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, else its eos id (padding is masked out either way)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    raise ValueError("The tokenizer has neither a pad nor an eos token; set tokenizer.pad_token.")


@dataclass
class MultiTaskCollator:
    """Right-pad ``input_ids`` / ``attention_mask`` / ``labels`` and stack ``task_ids``.

    Takes a list of examples from :func:`samora.data.build_training_stream` and returns
    ``input_ids`` (batch, seq) LongTensor, ``attention_mask`` (batch, seq) LongTensor (0 on
    padding), ``labels`` (batch, seq) LongTensor (-100 on prompt and padding; only when the
    examples carry labels) and ``task_ids`` (batch,) LongTensor. ``pad_to_multiple_of`` rounds
    the sequence length up (e.g. 8 for tensor cores).
    """

    tokenizer: Any
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("MultiTaskCollator got an empty batch.")
        if any("task_ids" not in example for example in examples):
            raise ValueError(
                "Every example needs a 'task_ids' entry (the index of its task); "
                "build examples with samora.data.build_training_stream."
            )
        length = max(len(example["input_ids"]) for example in examples)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        pad = pad_token_id(self.tokenizer)
        with_labels = all("labels" in example for example in examples)
        input_ids = torch.full((len(examples), length), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
        for row, example in enumerate(examples):
            size = len(example["input_ids"])
            input_ids[row, :size] = torch.as_tensor(example["input_ids"], dtype=torch.long)
            attention_mask[row, :size] = 1
            if with_labels:
                labels[row, :size] = torch.as_tensor(example["labels"], dtype=torch.long)
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "task_ids": torch.as_tensor([int(e["task_ids"]) for e in examples], dtype=torch.long),
        }
        if with_labels:
            batch["labels"] = labels
        return batch
