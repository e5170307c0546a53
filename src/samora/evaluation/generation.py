"""The generate protocol's decoding (LLM-Adapters / MTL-LoRA): one response per prompt.

Greedy decoding (``num_beams=1``) or beam search over left-padded batches, longest prompts first;
a prompt longer than the context window less ``max_new_tokens`` loses tokens from its start. The
responses are then read by :func:`samora.evaluation.answers.extract_answer`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig

from samora.data.collate import pad_token_id
from samora.evaluation.batching import chunks, context_window, left_padded, routing_inputs

logger = logging.getLogger(__name__)


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
    room = context_window(model) - max_new_tokens
    cut = sum(len(ids) > room for ids in encoded)
    if cut:
        logger.warning(
            "%s: %d of %d prompts exceed the model's context window less max_new_tokens (%d tokens); "
            "they were cut from the left",
            desc,
            cut,
            len(encoded),
            room,
        )
    encoded = [ids[-room:] for ids in encoded]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    device = next(model.parameters()).device
    pad = pad_token_id(tokenizer)
    eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False, pad_token_id=pad, eos_token_id=eos
    )
    responses = [""] * len(encoded)
    for batch in tqdm(chunks(order, batch_size), desc=desc, disable=not progress, total=-(-len(order) // batch_size)):
        width = max(len(encoded[i]) for i in batch)
        input_ids, attention_mask = left_padded([encoded[i] for i in batch], width, pad)
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=config,
            **routing_inputs([task_id] * len(batch), device),
        )
        texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        for i, text in zip(batch, texts):
            responses[i] = text.strip()
    return responses
