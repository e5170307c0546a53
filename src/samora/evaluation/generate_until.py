"""Free-text generation of ``generate_until`` tasks, with lm-evaluation-harness 0.4's semantics.

For each prompt (the rendered ``doc_to_text``, inside the chat template when one is applied):

1. The prompt is tokenised as lm-eval's HF backend does (special tokens added unless the text
   already starts with the tokenizer's BOS text) and cut from the left to the context window less
   ``max_gen_toks`` tokens.
2. Up to ``max_gen_toks`` tokens are decoded greedily, prompts in left-padded batches of
   ``batch_size``, longest first, with the routed task id. A row stops at the model's EOS token,
   at any ``stop_token_ids`` (a chat template's end-of-turn token) or once its last generated
   tokens contain one of the stop strings ``until`` (the prompt is never searched).
3. The generated tokens are decoded without special tokens and the text is cut before the first
   occurrence of each stop string in turn (``text = text.split(stop)[0]``); the tokenizer's EOS
   text is one of the stop strings, as in lm-eval. The text is not stripped.

:func:`generation_settings` reads a task's ``generation_kwargs``: ``until`` (a string or a list),
``max_gen_toks`` (lm-eval's default 256; ``max_new_tokens`` is its alias), ``do_sample: false`` and
``temperature: 0``. samora decodes greedily only: sampling, and every other key, is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from samora.data.collate import pad_token_id
from samora.evaluation.batching import context_window, cut_to_room, generate_batched

DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's HF backend default


class GenerationSettings(NamedTuple):
    until: tuple[str, ...]
    max_gen_toks: int


def generation_settings(generation_kwargs: Mapping[str, Any] | None, task: str = "task") -> GenerationSettings:
    """``until`` and ``max_gen_toks`` of a task's ``generation_kwargs`` (see the module docstring)."""
    kwargs = dict(generation_kwargs or {})
    until = kwargs.pop("until", None)
    until = [until] if isinstance(until, str) else list(until or [])
    if not all(isinstance(stop, str) for stop in until):
        raise ValueError(f"{task}: generation_kwargs.until must be a string or a list of strings, got {until!r}")
    max_gen_toks = kwargs.pop("max_gen_toks", kwargs.pop("max_new_tokens", DEFAULT_MAX_GEN_TOKS))
    if not isinstance(max_gen_toks, int) or isinstance(max_gen_toks, bool) or max_gen_toks < 1:
        raise ValueError(f"{task}: generation_kwargs.max_gen_toks must be a positive integer, got {max_gen_toks!r}")
    if kwargs.pop("do_sample", False) or kwargs.pop("temperature", 0) not in (0, 0.0, None):
        raise ValueError(
            f"{task}: generation_kwargs asks for sampling (do_sample / temperature > 0); samora decodes "
            "greedily, so that scores are reproducible: remove do_sample and temperature"
        )
    if kwargs:
        raise ValueError(
            f"{task}: generation_kwargs key(s) {sorted(kwargs)} are not supported; samora honours until, "
            "max_gen_toks (or max_new_tokens), do_sample: false and temperature: 0"
        )
    return GenerationSettings(tuple(until), max_gen_toks)


class _StopStrings(StoppingCriteria):
    """Per row: done once the text of its last generated tokens contains a stop string (lm-eval's
    ``MultiTokenEOSCriteria``: the last ``len(tokens of the stop) + 2`` tokens are searched, never
    the prompt's; but each row stops on its own). Stopping late is harmless, the text is cut after."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_width: int) -> None:
        self.tokenizer, self.stops, self.prompt_width = tokenizer, [s for s in stops if s], prompt_width
        self.lookback = 2 + max((len(tokenizer.encode(s, add_special_tokens=False)) for s in self.stops), default=0)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width :][:, -self.lookback :])
        return torch.tensor([any(stop in text for stop in self.stops) for text in texts], device=input_ids.device)


@torch.no_grad()
def generate_until(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    settings: GenerationSettings,
    *,
    stop_token_ids: Sequence[int] = (),
    batch_size: int = 8,
    task_id: int | None = None,
    progress: bool = True,
    desc: str = "generate_until",
) -> list[str]:
    """The generated text of each prompt, cut at the stop strings (see the module docstring)."""
    room = context_window(model) - settings.max_gen_toks
    if room < 1:
        raise ValueError(
            f"{desc}: max_gen_toks={settings.max_gen_toks} leaves no room for the prompt in the model's "
            f"context window of {context_window(model)} tokens; lower generation_kwargs.max_gen_toks"
        )
    encoded = [_encode_prompt(tokenizer, prompt) for prompt in prompts]
    encoded = cut_to_room(desc, encoded, room, "max_gen_toks")
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), prompts[i]))
    eos = _eos_ids(model, tokenizer) + [i for i in stop_token_ids if i is not None]
    stops = [*settings.until, *([tokenizer.eos_token] if tokenizer.eos_token else [])]
    config = GenerationConfig(
        max_new_tokens=settings.max_gen_toks,
        num_beams=1,
        do_sample=False,
        pad_token_id=pad_token_id(tokenizer),
        eos_token_id=eos,
    )
    generated = generate_batched(
        model,
        encoded,
        order,
        config,
        batch_size=batch_size,
        task_id=task_id,
        progress=progress,
        desc=desc,
        stopping_criteria=lambda width: StoppingCriteriaList([_StopStrings(tokenizer, stops, width)]),
    )
    return [cut_at_stops(tokenizer.decode(tokens, skip_special_tokens=True), stops) for tokens in generated]


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """``text`` before the first occurrence of each (non-empty) stop string, in turn."""
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


def _encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids with the tokenizer's special tokens, unless the text already starts with its BOS."""
    bos = tokenizer.bos_token
    return tokenizer(prompt, add_special_tokens=not (bos and prompt.startswith(bos)))["input_ids"]


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    eos = tokenizer.eos_token_id if eos is None else eos
    return [eos] if isinstance(eos, int) else list(eos or [])
