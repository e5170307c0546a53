"""Tokenising a prompt and its response so that the boundary between them is exact.

Training and log-likelihood scoring share one rule: the prompt and the response are encoded
separately (the prompt with the tokenizer's special tokens, the response without) and
concatenated, so the loss mask and the scored tokens are exactly the response's tokens.
Trailing spaces of the prompt move to the start of the response, because BPE tokenizers attach a
space to the word after it (as lm-evaluation-harness does).
"""

from __future__ import annotations

from typing import Any

IGNORE_INDEX = -100


def encode_pairs(tokenizer: Any, prompts: list[str], responses: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of each prompt (with special tokens) and of each response (without)."""
    stripped = [prompt.rstrip(" ") for prompt in prompts]
    moved = [prompt[len(kept) :] + response for prompt, kept, response in zip(prompts, stripped, responses)]
    prompt_ids = tokenizer(stripped, add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(moved, add_special_tokens=False)["input_ids"]
    return prompt_ids, response_ids


def tokenize_for_training(
    tokenizer: Any, prompts: list[str], responses: list[str], max_length: int, *, append_eos: bool = True
) -> dict[str, list]:
    """``input_ids = prompt + response + eos`` with ``labels`` of -100 on the prompt tokens.

    ``append_eos=False`` leaves the eos out, for responses that already end their turn (a chat
    template's assistant turn ends with its own end-of-turn marker).

    A sequence longer than ``max_length`` loses tokens from the start of its prompt, so the
    response (what the loss is on) and the end of the prompt (options, "Answer format") stay.
    A response (with eos) that leaves no room for the prompt keeps the end of the prompt in half
    the window (at most) and loses its own last tokens, as LLaMA-Factory's cutoff does (a
    harness-template answer text can be hundreds of tokens long). Returns the model columns plus
    ``prompt_truncated`` and ``response_truncated`` (bool per example).
    """
    prompt_ids, response_ids = encode_pairs(tokenizer, prompts, responses)
    eos = [tokenizer.eos_token_id] if append_eos and tokenizer.eos_token_id is not None else []
    columns: dict[str, list] = {
        "input_ids": [],
        "attention_mask": [],
        "labels": [],
        "prompt_truncated": [],
        "response_truncated": [],
    }
    for prompt, response in zip(prompt_ids, response_ids):
        response = response + eos
        room = max_length - len(response)
        columns["response_truncated"].append(room < 1)
        if room < 1:
            room = max(1, min(len(prompt), max_length // 2))
            response = response[: max_length - room]
        columns["prompt_truncated"].append(len(prompt) > room)
        prompt = prompt[-room:] if len(prompt) > room else prompt
        columns["input_ids"].append(prompt + response)
        columns["attention_mask"].append([1] * (len(prompt) + len(response)))
        columns["labels"].append([IGNORE_INDEX] * len(prompt) + response)
    return columns
