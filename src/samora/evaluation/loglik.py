"""The loglik protocol (lm-evaluation-harness's multiple-choice scoring): for each choice i,

    score_i = sum_{j in continuation_i} log p(token_j | choice_prompt_i, continuation_i[<j])

The prediction is argmax_i score_i (``acc``); ``acc_norm`` uses argmax_i score_i / len(choice_i)
with the length in characters of the choice *without* the target delimiter (the leading space of
`` yes``), as lm-evaluation-harness 0.4 does (:func:`choice_length`). Prompt and continuation are
tokenised as in training (:func:`samora.data.encoding.encode_pairs`); a sequence longer than the
context window + 1 loses tokens from the start of its prompt. The choices of one example usually
share their prompt: by default each distinct (prompt, task id) and its choices' common leading
tokens are run once with the KV cache on, and only the tokens where the choices differ are run
after it (:func:`_score_shared`); lone prompts take the plain path, one full forward per request
(:func:`_score_plain`, also the reference path with ``share_prompts=False``). A header common to
all prompts of a batch (a template's instruction wrapper) runs once too. Requests are sorted by
length to limit padding; models that take ``logits_to_keep`` (transformers' causal LMs) compute
the vocabulary projection only at the positions that are scored, which saves most of the memory
of (batch, seq, vocab) logits.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from samora.data.collate import pad_token_id
from samora.data.encoding import encode_pairs
from samora.evaluation.batching import chunks, context_window, left_padded, right_padded, routing_inputs
from samora.evaluation.metrics import require_finite_scores

logger = logging.getLogger(__name__)

MIN_SHARED_HEADER = 4  # fewer common leading tokens do not pay for the extra forward
TARGET_DELIMITER = " "  # lm-evaluation-harness's default between a prompt and its choice


def choice_length(choice: str, target_delimiter: str = TARGET_DELIMITER) -> int:
    """Characters of ``choice`` as lm-evaluation-harness's ``acc_norm`` counts them.

    The harness scores the continuation ``target_delimiter + text`` but divides by ``len(text)``;
    a samora choice is the whole continuation (`` yes``), so the delimiter is removed first:
    ``choice_length(" yes") == 3``. A choice that starts without it (``the correct answer is
    answer1``, whose template has an empty delimiter) counts in full.
    """
    return len(choice.removeprefix(target_delimiter))


class _Request(NamedTuple):
    """One scored continuation: token ids after left-truncation (``prompt`` keeps >= 1 token)."""

    prompt: tuple[int, ...]
    continuation: tuple[int, ...]
    task_id: int | None


class _Setup(NamedTuple):
    model: Any
    pad: int
    device: torch.device
    keeps_logits: bool  # whether the model takes ``logits_to_keep``


@torch.no_grad()
def loglik_scores(
    model: Any,
    tokenizer: Any,
    contexts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 8,
    task_id: int | Sequence[int] | None = None,
    share_prompts: bool = True,
    progress: bool = True,
    desc: str = "loglik",
) -> list[float]:
    """Sum of log-probabilities of each continuation given its context (see module docstring).

    ``task_id`` (one id for all requests, or one per request) is passed to the model as
    ``task_ids`` (batch,) when not ``None``.

    ``share_prompts=True`` (the default) scores every group of requests with the same prompt
    tokens and task id (the choices of one multiple-choice example) from one forward of that
    prompt: :func:`_score_shared` runs ``batch_size`` distinct prompts (with their choices' common
    leading tokens) with the KV cache on, copies each one's cache per choice and runs only the
    tokens where the choices differ. Requests whose prompt is
    their own (WinoGrande's partial scoring) take the plain path, :func:`_score_plain`: one full
    forward per request, ``batch_size`` requests per forward. ``share_prompts=False`` sends every
    request down the plain path (the reference the shared path is tested against).

    NaN/inf scores (a diverged adapter) raise :class:`samora.evaluation.metrics.NonFiniteScores`
    instead of becoming predictions: an argmax over NaN would pick the first choice.
    """
    requests = _encode_requests(model, tokenizer, contexts, continuations, task_id, desc)
    groups: dict[tuple, list[int]] = {}
    for i, request in enumerate(requests):
        key = (request.prompt, request.task_id) if share_prompts else i
        groups.setdefault(key, []).append(i)
    shared = [g for g in groups.values() if len(g) > 1]
    single = [i for g in groups.values() if len(g) == 1 for i in g]
    single.sort(key=lambda i: -len(requests[i].prompt + requests[i].continuation))
    shared.sort(key=lambda g: -len(requests[g[0]].prompt))
    setup = _Setup(
        model,
        pad_token_id(tokenizer),
        next(model.parameters()).device,
        "logits_to_keep" in inspect.signature(model.forward).parameters,
    )
    batches = [(_score_plain, batch) for batch in chunks(single, batch_size)] + [
        (_score_shared, batch) for batch in chunks(shared, batch_size)
    ]
    scores = [0.0] * len(requests)
    for score, batch in tqdm(batches, desc=desc, disable=not progress):
        score(setup, requests, batch, scores)
    require_finite_scores(scores, f"{desc} log-likelihoods")
    return scores


def _encode_requests(
    model: Any,
    tokenizer: Any,
    contexts: Sequence[str],
    continuations: Sequence[str],
    task_id: int | Sequence[int] | None,
    desc: str = "loglik",
) -> list[_Request]:
    """Tokenise (:func:`encode_pairs`); an empty prompt becomes bos (else eos), and a sequence
    longer than the context window + 1 loses tokens from the start of its prompt."""
    if len(contexts) != len(continuations):
        raise ValueError(
            f"Got {len(contexts)} contexts but {len(continuations)} continuations; give one context per continuation."
        )
    tasks = list(task_id) if isinstance(task_id, Sequence) else [task_id] * len(contexts)
    if len(tasks) != len(contexts):
        raise ValueError(
            f"task_id has {len(tasks)} entries for {len(contexts)} requests; give one "
            "id for all requests or one per request."
        )
    prompt_ids, continuation_ids = encode_pairs(tokenizer, list(contexts), list(continuations))
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    window = context_window(model)
    requests, cut = [], 0
    for prompt, continuation, task in zip(prompt_ids, continuation_ids, tasks):
        if not continuation or len(continuation) > window:
            raise ValueError(f"A continuation must have 1..{window} tokens, got {len(continuation)}.")
        sequence = (prompt or [start]) + continuation
        cut += len(sequence) > window + 1
        sequence = sequence[-(window + 1) :]
        requests.append(
            _Request(tuple(sequence[: -len(continuation)]), tuple(continuation), None if task is None else int(task))
        )
    if cut:
        logger.warning(
            "%s: %d of %d scored sequences exceed the model's context window (%d tokens); their "
            "prompts were cut from the left",
            desc,
            cut,
            len(requests),
            window,
        )
    return requests


def _score_plain(setup: _Setup, requests: list[_Request], batch: list[int], scores: list[float]) -> None:
    """Reference path: one right-padded forward over ``prompt + continuation[:-1]`` per request.

    Logits at position j predict token j + 1, so a request's c scored tokens are predicted at
    positions [len - 1 - c, len - 1); only the batch's span of those is computed.
    """
    sequences = [requests[i].prompt + requests[i].continuation for i in batch]
    first = min(len(requests[i].prompt) - 1 for i in batch) if setup.keeps_logits else 0
    width = max(len(sequence) for sequence in sequences) - 1
    input_ids, attention_mask = right_padded([s[:-1] for s in sequences], width, setup.pad)
    extra = {"logits_to_keep": torch.arange(first, width, device=setup.device)} if setup.keeps_logits else {}
    logits = setup.model(
        input_ids=input_ids.to(setup.device),
        attention_mask=attention_mask.to(setup.device),
        use_cache=False,
        **extra,
        **routing_inputs([requests[i].task_id for i in batch], setup.device),
    ).logits
    for row, i in enumerate(batch):
        end = len(sequences[row]) - 1 - first
        scored = requests[i].continuation
        scores[i] = _sum_logprobs(logits[row, end - len(scored) : end], scored)


def _score_shared(setup: _Setup, requests: list[_Request], groups: list[list[int]], scores: list[float]) -> None:
    """Shared-prompt path: each group's stem once, then only the tokens where its choices differ.

    A group's stem is S_g = P_g + c[:m_g]: its prompt and the m_g leading tokens that all its
    choices share (``the correct answer is answer`` of ``answer1``..``answer4``), with
    m_g <= min_k |c_k| - 1 so that each choice keeps a tail t_k = c_k[m_g:] of >= 1 token.

    1. Stems (G, W) left-padded, position ids cumsum(mask) - 1, KV cache on (:func:`_run_stems`);
       the logits of the last m_g + 1 positions give log p(c[:m_g] | P_g), shared by every
       choice, and log p(t_k[0] | S_g) for each choice.
    2. The cache rows are copied per choice whose tail has > 1 token
       (``cache.reorder_cache(group of each row)``, as beam search does) and the tails' tokens
       t_k[:-1] (R, L), right-padded, run at positions |S_g| + j with the attention mask
       [stem mask of g, tail mask]; their logits score t_k[1:].

    Task ids follow the rows: (G,) in step 1, (R,) in step 2.
    """
    stems, shared_tokens = [], []
    for group in groups:
        continuations = [requests[i].continuation for i in group]
        common = min(_common_prefix(continuations), min(map(len, continuations)) - 1)
        stems.append(requests[group[0]].prompt + continuations[0][:common])
        shared_tokens.append(common)
    tasks = [requests[group[0]].task_id for group in groups]
    keep = max(shared_tokens) + 1
    logits, cache, stem_mask = _run_stems(setup, stems, tasks, keep)
    logits = logits[:, -keep:]  # position keep - 1 - m predicts the stem's m-th last token
    rows = []  # (group, request) of every choice whose tail has more than one token
    for g, (group, common) in enumerate(zip(groups, shared_tokens)):
        first = requests[group[0]].continuation
        shared = _sum_logprobs(logits[g, keep - 1 - common : keep - 1], first[:common]) if common else 0.0
        last = torch.log_softmax(logits[g, -1].float(), dim=-1)
        for i in group:
            scores[i] = shared + float(last[requests[i].continuation[common]])
            if len(requests[i].continuation) > common + 1:
                rows.append((g, i))
    if rows:
        _score_tails(
            setup, requests, rows, cache, stem_mask, [len(stem) for stem in stems], shared_tokens, tasks, scores
        )


def _run_stems(
    setup: _Setup, stems: list[tuple[int, ...]], tasks: list[int | None], keep: int
) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """Step 1 of :func:`_score_shared`: logits of the stems' last ``keep`` positions (G, keep, V),
    their KV cache and attention mask (G, W).

    When all G stems start with the same H >= ``MIN_SHARED_HEADER`` tokens under one task id
    (a template's instruction header), those run once, (1, H), and their cache is copied to the
    G rows; the rest of each stem follows, left-padded after the header: mask
    [1]*H + [0]*pad + [1]*rest, positions H + j. Otherwise the stems run whole, left-padded.
    """
    model, device = setup.model, setup.device
    header = min(_common_prefix(stems), min(map(len, stems)) - 1) if len(stems) > 1 and len(set(tasks)) == 1 else 0
    cache = None
    if header >= MIN_SHARED_HEADER:
        cache = model(
            input_ids=torch.tensor([stems[0][:header]], device=device),
            use_cache=True,
            **({"logits_to_keep": 1} if setup.keeps_logits else {}),
            **routing_inputs(tasks[:1], device),
        ).past_key_values
        cache.reorder_cache(torch.zeros(len(stems), dtype=torch.long, device=device))
    else:
        header = 0
    rests = [stem[header:] for stem in stems]
    input_ids, rest_mask = left_padded(rests, max(map(len, rests)), setup.pad)
    rest_mask = rest_mask.to(device)
    stem_mask = torch.cat([rest_mask.new_ones((len(stems), header)), rest_mask], dim=1)
    output = model(
        input_ids=input_ids.to(device),
        attention_mask=stem_mask,
        position_ids=header + (rest_mask.cumsum(-1) - 1).clamp(min=0),
        past_key_values=cache,
        use_cache=True,
        **({"logits_to_keep": keep} if setup.keeps_logits else {}),
        **routing_inputs(tasks, device),
    )
    if output.past_key_values is None:
        raise ValueError(
            f"{type(model).__name__} returned no KV cache; score it with loglik_scores(..., share_prompts=False)."
        )
    return output.logits, output.past_key_values, stem_mask


def _score_tails(
    setup: _Setup,
    requests: list[_Request],
    rows: list[tuple[int, int]],
    cache: Any,
    stem_mask: torch.Tensor,
    stem_lengths: list[int],
    shared_tokens: list[int],
    tasks: list[int | None],
    scores: list[float],
) -> None:
    """Step 2 of :func:`_score_shared`: add log p(t_k[1:] | S_g, t_k[0]) to each row's score."""
    device = setup.device
    row_group = torch.tensor([g for g, _ in rows], device=device)
    cache.reorder_cache(row_group)
    tails = [requests[i].continuation[shared_tokens[g] :] for g, i in rows]
    tail_ids, tail_mask = right_padded([tail[:-1] for tail in tails], max(map(len, tails)) - 1, setup.pad)
    starts = torch.tensor([stem_lengths[g] for g, _ in rows])
    logits = setup.model(
        input_ids=tail_ids.to(device),
        attention_mask=torch.cat([stem_mask[row_group], tail_mask.to(device)], 1),
        position_ids=(starts[:, None] + torch.arange(tail_ids.shape[1])).to(device),
        past_key_values=cache,
        use_cache=True,
        **routing_inputs([tasks[g] for g, _ in rows], device),
    ).logits
    for row, ((_, i), tail) in enumerate(zip(rows, tails)):
        scores[i] += _sum_logprobs(logits[row, : len(tail) - 1], tail[1:])


def _common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix that every sequence starts with."""
    length = 0
    for tokens in zip(*sequences):
        if any(token != tokens[0] for token in tokens):
            break
        length += 1
    return length


def _sum_logprobs(logits: torch.Tensor, targets: Sequence[int]) -> float:
    """sum_j log_softmax(logits)[j, targets[j]] for logits (len(targets), vocab)."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    index = torch.tensor(targets, device=logprobs.device)[:, None]
    return float(logprobs.gather(-1, index).sum())
