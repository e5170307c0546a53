"""The generate protocol's decoding (LLM-Adapters / MTL-LoRA): one response per prompt.

Greedy decoding (``num_beams=1``) or beam search over left-padded batches, longest prompts first;
a prompt longer than the context window less ``max_new_tokens`` loses tokens from its start. The
responses are then read by :func:`samora.evaluation.answers.extract_answer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import GenerationConfig

from samora.data.collate import pad_token_id
from samora.evaluation.batching import context_window, cut_to_room, generate_batched


@torch.no_grad()
def generate_responses(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    batch_size: int = 8,
    num_beams: int = 1,
    max_new_tokens: int = 32,
    task_id: int | None = None,
    progress: bool = True,
    desc: str = "generate",
) -> list[str]:
    """Decode a response to each prompt (greedy when ``num_beams == 1``), left-padded batches."""
    encoded = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    encoded = cut_to_room(desc, encoded, context_window(model) - max_new_tokens, "max_new_tokens")
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        do_sample=False,
        pad_token_id=pad_token_id(tokenizer),
        eos_token_id=eos,
    )
    generated = generate_batched(
        model, encoded, order, config, batch_size=batch_size, task_id=task_id, progress=progress, desc=desc
    )
    return [text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
