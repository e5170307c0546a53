"""The two scoring protocols: log-likelihood ranking and generation with answer extraction.

``loglik`` (lm-evaluation-harness's multiple-choice scoring): for each choice i,

    score_i = sum_{j in continuation_i} log p(token_j | choice_prompt_i, continuation_i[<j])

The prediction is argmax_i score_i (``acc``); ``acc_norm`` uses argmax_i score_i / len(choice_i)
with the length in characters of the choice *without* the target delimiter (the leading space of
`` yes``), as lm-evaluation-harness 0.4 does (:func:`choice_length`). Prompt and continuation are
tokenised as in training (:func:`samora.data.encoding.encode_pairs`); a prompt too long for the model loses tokens
from its start. Requests are sorted by length and batched with right padding; models that take
``logits_to_keep`` (transformers' causal LMs) compute the vocabulary projection only at the
positions that are scored, which saves most of the memory of (batch, seq, vocab) logits.

``generate`` (LLM-Adapters / MTL-LoRA): greedy decoding (``num_beams=1``) or beam search, then the
first match of any answer label in the generated text is the prediction (LLM-Adapters'
``re.findall("answer1|answer2|...")[0]``). ``lenient`` adds MTL-LoRA's fallback: with no label in
the text, the first bare digit 1..n counts as choice n (MTL-LoRA applied it to the answer1..N
tasks; here it applies to every numbered label family). No match at all is ``-1``: unparseable.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig

from samora.data.collate import pad_token_id
from samora.data.encoding import encode_pairs

UNPARSED = -1
TARGET_DELIMITER = " "  # lm-evaluation-harness's default between a prompt and its choice


def choice_length(choice: str, target_delimiter: str = TARGET_DELIMITER) -> int:
    """Characters of ``choice`` as lm-evaluation-harness's ``acc_norm`` counts them.

    The harness scores the continuation ``target_delimiter + text`` but divides by ``len(text)``;
    a samora choice is the whole continuation (`` yes``), so the delimiter is removed first:
    ``choice_length(" yes") == 3``. A choice that starts without it (``the correct answer is
    answer1``, whose template has an empty delimiter) counts in full.
    """
    return len(choice.removeprefix(target_delimiter))


def context_window(model: Any, default: int = 2048) -> int:
    """The most tokens the model attends to (``max_position_embeddings``), else ``default``."""
    return int(getattr(model.config, "max_position_embeddings", None) or default)


@torch.no_grad()
def loglik_scores(model: Any, tokenizer: Any, contexts: Sequence[str],
                  continuations: Sequence[str], *, batch_size: int = 8,
                  task_id: int | None = None, progress: bool = True, desc: str = "loglik"
                  ) -> list[float]:
    """Sum of log-probabilities of each continuation given its context (see module docstring).

    ``task_id`` is passed to the model as ``task_ids`` (batch,) when not ``None``.
    """
    prompt_ids, continuation_ids = encode_pairs(tokenizer, list(contexts), list(continuations))
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else \
        tokenizer.eos_token_id
    window = context_window(model)
    requests = []  # (input ids, number of scored tokens at their end)
    for prompt, continuation in zip(prompt_ids, continuation_ids):
        if not continuation or len(continuation) > window:
            raise ValueError(f"A continuation must have 1..{window} tokens, got "
                             f"{len(continuation)}.")
        sequence = ((prompt or [start]) + continuation)[-(window + 1):]
        requests.append((sequence, len(continuation)))
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i][0]))
    device = next(model.parameters()).device
    pad = pad_token_id(tokenizer)
    keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    scores = [0.0] * len(requests)
    for batch in tqdm(_chunks(order, batch_size), desc=desc, disable=not progress,
                      total=-(-len(order) // batch_size)):
        # logits at position j predict token j + 1: a request's scored tokens are predicted at
        # positions [len - 1 - scored, len - 1); only the batch's span of those is computed
        first = min(len(requests[i][0]) - 1 - requests[i][1] for i in batch) if keeps_logits else 0
        width = max(len(requests[i][0]) for i in batch) - 1
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            inputs = requests[i][0][:-1]
            input_ids[row, :len(inputs)] = torch.tensor(inputs)
            attention_mask[row, :len(inputs)] = 1
        extra = {"logits_to_keep": torch.arange(first, width, device=device)} if keeps_logits \
            else {}
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                       use_cache=False, **extra, **_routing(task_id, len(batch), device)).logits
        for row, i in enumerate(batch):
            sequence, scored = requests[i]
            end = len(sequence) - 1 - first
            logprobs = torch.log_softmax(logits[row, end - scored:end].float(), dim=-1)
            targets = torch.tensor(sequence[-scored:], device=logprobs.device)
            scores[i] = float(logprobs.gather(-1, targets[:, None]).sum())
    return scores


@torch.no_grad()
def generate_responses(model: Any, tokenizer: Any, prompts: Sequence[str], *,
                       batch_size: int = 8, num_beams: int = 1, max_new_tokens: int = 32,
                       task_id: int | None = None, progress: bool = True,
                       desc: str = "generate") -> list[str]:
    """Decode a response to each prompt (greedy when ``num_beams == 1``), left-padded batches."""
    encoded = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    room = context_window(model) - max_new_tokens
    encoded = [ids[-room:] for ids in encoded]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    device = next(model.parameters()).device
    pad = pad_token_id(tokenizer)
    eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
    config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams,
                              do_sample=False, pad_token_id=pad, eos_token_id=eos)
    responses = [""] * len(encoded)
    for batch in tqdm(_chunks(order, batch_size), desc=desc, disable=not progress,
                      total=-(-len(order) // batch_size)):
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            attention_mask[row, width - len(encoded[i]):] = 1
        output = model.generate(input_ids=input_ids.to(device),
                                attention_mask=attention_mask.to(device),
                                generation_config=config,
                                **_routing(task_id, len(batch), device))
        texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        for i, text in zip(batch, texts):
            responses[i] = text.strip()
    return responses


def extract_answer(text: str, labels: Sequence[str], *, ignore_case: bool = False,
                   whole_words: bool = False, lenient: bool = False) -> int:
    """Index of the first answer label found in ``text``, or ``-1`` (see module docstring)."""
    alternatives = "|".join(re.escape(label) for label in sorted(set(labels), key=len,
                                                                   reverse=True))
    pattern = rf"\b(?:{alternatives})\b" if whole_words else alternatives
    flags = re.IGNORECASE if ignore_case else 0
    match = re.search(pattern, text, flags)
    if match:
        found = match.group(0).lower() if ignore_case else match.group(0)
        return [label.lower() if ignore_case else label for label in labels].index(found)
    numbered = all(re.search(r"\d$", label) for label in labels)
    if lenient and numbered:
        digit = re.search(f"[1-{min(len(labels), 9)}]", text)
        if digit:
            return int(digit.group(0)) - 1
    return UNPARSED


def _routing(task_id: int | None, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    if task_id is None:
        return {}
    return {"task_ids": torch.full((batch,), task_id, dtype=torch.long, device=device)}


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[start:start + size] for start in range(0, len(items), size)]
