"""One batched decoding pass over requests for different tasks: what ``samora serve`` runs per batch.

Each request asks for ``n`` completions of one prompt under one task, with OpenAI's sampling
parameters. Its ``n`` rows join the batch; the rows are grouped by how they decode and each group
is one left-padded ``model.generate(..., task_ids=[...])`` call, so requests for different tasks
share a forward (samora routes each row by its own task id):

- greedy rows (``temperature == 0``) form one group, whatever their tasks and lengths;
- sampled rows without a seed group by ``(temperature, top_p)``;
- a request with a ``seed`` is its own group, generated after ``torch.manual_seed(seed)``, so its
  samples do not depend on what it was batched with (vLLM's per-request seed).

A group decodes up to its longest ``max_tokens``; each row is then cut to its own: at its first
end-of-sequence token (``finish_reason = "stop"``), at ``max_tokens`` (``"length"``), and before the
first occurrence of any of its ``stop`` strings (``"stop"``, the stop string not included, as vLLM;
its tokens counted up to the one that completed the stop string).
Greedy decoding is deterministic per row, so a row's answer is the prefix that the same request
decoded alone would give (``tests/serve/test_generation.py`` checks it for every method).

:func:`stream_batch` yields the rows' new text after every decoding step (``generate`` runs in a
thread, see :mod:`samora.serve.streaming`) and their final answers last; :func:`generate_batch`
keeps only the final answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import GenerationConfig

from samora.data.collate import pad_token_id
from samora.evaluation.batching import left_padded, routing_inputs
from samora.serve.streaming import RowText, generate_in_thread


@dataclass(frozen=True)
class Sampling:
    """OpenAI's sampling parameters of one request (already validated).

    temperature 0 is greedy decoding; ``n`` completions of the prompt; ``stop``: strings that end a
    completion (not included in it); ``seed``: a seeded request samples reproducibly.
    """

    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class GenerationRequest:
    """A tokenised prompt, the task id it is routed by (None: a task-less adapter) and its sampling."""

    prompt_ids: tuple[int, ...]
    task_id: int | None
    sampling: Sampling = field(default_factory=Sampling)


@dataclass(frozen=True)
class Choice:
    """One completion: its text, why it ended (``"stop"`` or ``"length"``) and its token count."""

    text: str
    finish_reason: str
    completion_tokens: int


@dataclass(frozen=True)
class Piece:
    """New text of choice ``choice`` of request ``request``; ``finished`` is set on its last piece
    (the final answer, whose text the pieces add up to)."""

    request: int
    choice: int
    text: str
    finished: Choice | None = None


def generate_batch(model: Any, tokenizer: Any, requests: Sequence[GenerationRequest]) -> list[list[Choice]]:
    """The ``n`` choices of every request, decoded in as few batched ``generate`` calls as their
    sampling allows (see the module docstring); ``result[i]`` answers ``requests[i]``."""
    choices: list[list[Choice]] = [[None] * request.sampling.n for request in requests]
    for pieces in stream_batch(model, tokenizer, requests):
        for piece in pieces:
            if piece.finished is not None:
                choices[piece.request][piece.choice] = piece.finished
    return choices


def stream_batch(model: Any, tokenizer: Any, requests: Sequence[GenerationRequest]) -> Iterator[list[Piece]]:
    """:func:`generate_batch` as it decodes: after each step of each ``generate`` call, the new text
    of its rows (only rows with some), then every row's rest and final answer."""
    groups: dict[tuple, list[tuple[int, int, GenerationRequest]]] = {}
    for index, request in enumerate(requests):
        for choice in range(request.sampling.n):
            groups.setdefault(decoding_group(index, request.sampling), []).append((index, choice, request))
    for group in groups.values():
        yield from _stream_group(model, tokenizer, group)


def decoding_group(index: int, sampling: Sampling) -> tuple:
    """The key of the rows that can share one ``generate`` call (``index``: the request's position)."""
    if sampling.greedy:
        return ("greedy",)
    if sampling.seed is not None:
        return ("seeded", index)
    return ("sampled", sampling.temperature, sampling.top_p)


def _stream_group(
    model: Any, tokenizer: Any, group: list[tuple[int, int, GenerationRequest]]
) -> Iterator[list[Piece]]:
    """One left-padded ``generate`` call over rows that decode alike (in a thread, streamed); each
    row cut to its own limits."""
    rows = [request for _, _, request in group]
    width = max(len(row.prompt_ids) for row in rows)
    stops = end_of_sequence_ids(model, tokenizer)
    texts = [RowText(tokenizer, row.sampling.max_tokens, row.sampling.stop, stops) for row in rows]
    steps = generate_in_thread(lambda streamer: _generate(model, tokenizer, rows, width, stops, streamer))
    for step in steps:
        if isinstance(step, torch.Tensor):  # generate's output, after the last step
            finals = [
                finish(tokenizer, tokens.tolist(), row.sampling, stops) for row, tokens in zip(rows, step[:, width:])
            ]
            yield [
                Piece(index, choice, text.rest(final.text), final)
                for (index, choice, _), text, final in zip(group, texts, finals)
            ]
            return
        pieces = [Piece(index, choice, text.add(token)) for (index, choice, _), text, token in zip(group, texts, step)]
        yield [piece for piece in pieces if piece.text]


@torch.no_grad()
def _generate(model: Any, tokenizer: Any, rows: list[GenerationRequest], width: int, stops: list[int], streamer):
    """The ``generate`` call of one decoding group: left-padded prompts, each row's task id."""
    sampling = rows[0].sampling
    pad = pad_token_id(tokenizer)
    input_ids, attention_mask = left_padded([row.prompt_ids for row in rows], width, pad)
    device = next(model.parameters()).device
    options: dict[str, Any] = {"do_sample": not sampling.greedy, "num_beams": 1}
    if not sampling.greedy:
        options.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
    config = GenerationConfig(
        max_new_tokens=max(row.sampling.max_tokens for row in rows), pad_token_id=pad, eos_token_id=stops, **options
    )
    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    return model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        generation_config=config,
        streamer=streamer,
        **routing_inputs([row.task_id for row in rows], device),
    ).cpu()


def end_of_sequence_ids(model: Any, tokenizer: Any) -> list[int]:
    """The token ids that end a completion: the model's generation config's, else the tokenizer's."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return [int(token) for token in (eos if isinstance(eos, (list, tuple)) else [eos]) if token is not None]


def finish(tokenizer: Any, tokens: list[int], sampling: Sampling, stops: Sequence[int]) -> Choice:
    """Cut one row's new tokens to its request: end of sequence, ``max_tokens``, then stop strings."""
    tokens = tokens[: sampling.max_tokens]
    ended = next((i for i, token in enumerate(tokens) if token in stops), None)
    if ended is not None:
        tokens = tokens[:ended]
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    cut = min((text.find(stop) for stop in sampling.stop if stop and stop in text), default=None)
    if cut is not None:  # the tokens counted are those up to the one that completed the stop string
        used = next(size for size in range(1, len(tokens) + 1) if _has_stop(tokenizer, tokens[:size], sampling))
        return Choice(text[:cut], "stop", used)
    reason = "length" if ended is None and len(tokens) == sampling.max_tokens else "stop"
    return Choice(text, reason, len(tokens))


def _has_stop(tokenizer: Any, tokens: list[int], sampling: Sampling) -> bool:
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    return any(stop and stop in text for stop in sampling.stop)
