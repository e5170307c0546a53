"""A multi-task training stream: per-task caps, proportional or temperature sampling.

Sampling rule. After capping, task t has n_t examples. Its share of the stream is

    w_t = n_t^(1/T) / sum_s n_s^(1/T)

with T = 1 for ``sampling="proportional"`` (every capped example exactly once) and T =
``temperature`` for ``sampling="temperature"`` (T > 1 flattens the mixture towards uniform, as in
T5/mT5). The stream has ``num_examples`` examples (default: sum n_t); task t contributes
round(w_t * num_examples) of them (largest-remainder rounding): a random subset when that is
below n_t, otherwise whole passes over its examples plus a random remainder. Everything is drawn
from one ``numpy`` generator seeded with ``seed``, so a seed fixes the stream exactly.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import datasets
import numpy as np

from samora.data.encoding import tokenize_for_training
from samora.data.sources import Source, load_examples, load_records, render_examples
from samora.data.tasks import Task, get_task, resolve_tasks
from samora.data.templates import Template, get_template

logger = logging.getLogger(__name__)

STREAM_COLUMNS = ("input_ids", "attention_mask", "labels", "task_ids")


def mixture_counts(
    sizes: list[int], sampling: str = "proportional", temperature: float | None = None, total: int | None = None
) -> list[int]:
    """How many examples each task contributes (see the module docstring for the rule)."""
    if sampling not in ("proportional", "temperature"):
        raise ValueError(f"sampling must be 'proportional' or 'temperature', got {sampling!r}.")
    if sampling == "temperature" and (temperature is None or temperature <= 0):
        raise ValueError(
            "sampling='temperature' needs temperature > 0 (e.g. 2.0; 1.0 is "
            "proportional, larger is closer to uniform)."
        )
    if sampling == "proportional" and temperature is not None:
        raise ValueError("temperature only applies to sampling='temperature'.")
    if any(size < 1 for size in sizes):
        raise ValueError(f"Every task needs at least one example; sizes are {sizes}.")
    total = sum(sizes) if total is None else total
    if total < 1:
        raise ValueError(f"num_examples must be positive, got {total}.")
    power = 1.0 if sampling == "proportional" else 1.0 / temperature
    weights = np.asarray(sizes, dtype=np.float64) ** power
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(int)
    remainder = total - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:remainder]] += 1
    return counts.tolist()


def build_training_stream(
    tokenizer: Any,
    tasks: str | list[str],
    *,
    max_length: int = 256,
    per_task_cap: int | Mapping[str, int] | None = None,
    sampling: str = "proportional",
    temperature: float | None = None,
    num_examples: int | None = None,
    seed: int = 41,
    template: str | Template | Mapping[str, str] | None = None,
    source: str | os.PathLike | Source | Mapping[str, Any] = "auto",
    split: str = "train",
    length_bucketing: int | None = None,
    chat: Any = None,
) -> datasets.Dataset:
    """Tokenised, mixed training examples over several tasks.

    Columns: ``input_ids``, ``attention_mask``, ``labels`` (-100 on prompt tokens; the response
    ``the correct answer is ...`` and eos are learned) and ``task_ids`` (the index of the
    example's task in ``tasks`` as given, after :func:`resolve_tasks`). ``per_task_cap`` (one
    number or a task -> number mapping) keeps a seeded random subset of a task's split.
    ``template`` and ``source`` may be one value or a task -> value mapping. ``length_bucketing``
    (a window size in examples, e.g. 64 x batch size) sorts each window of the shuffled stream by
    length, so batches cut from it waste little padding while the windows stay in random order.
    The per-task counts are logged and stored as JSON in ``stream.info.description``. ``chat`` (a
    :class:`samora.data.chat.ChatFormat`) writes each example as a chat, the response (without the
    task's ``target_delimiter``) as the assistant turn that the loss is on.
    """
    names = resolve_tasks(tasks)
    rng = np.random.default_rng(seed)
    pools, available = _capped_pools(names, rng, split, per_task_cap, template, source)
    counts = mixture_counts([len(pool) for _, pool in pools], sampling, temperature, num_examples)
    delimiters = [get_task(name).target_delimiter for name in names]
    parts, truncated, cut_responses = _drawn_parts(pools, counts, rng, tokenizer, max_length, chat, delimiters)
    stream = datasets.concatenate_datasets(parts)
    stream = stream.select(rng.permutation(len(stream)))
    if length_bucketing:
        stream = stream.select(_bucketed_order(stream, length_bucketing))
    report = {
        "tasks": names,
        "available": available,
        "capped": [len(p) for _, p in pools],
        "counts": counts,
        "sampling": sampling,
        "temperature": temperature,
        "seed": seed,
        "prompt_truncated": truncated,
        "response_truncated": cut_responses,
    }
    logger.info("training stream: %s", ", ".join(f"{n}={c}" for n, c in zip(names, counts)))
    _warn_truncation(names, truncated, cut_responses, max_length)
    stream.info.description = json.dumps(report)
    return stream


def _capped_pools(
    names: list[str], rng: np.random.Generator, split: str, per_task_cap: Any, template: Any, source: Any
) -> tuple[list[tuple[datasets.Dataset, np.ndarray]], list[int]]:
    """Per task, its rendered examples and the indices (a seeded random subset under the cap) that
    the stream draws from; and every task's split size before capping."""
    pools, available = [], []
    for name in names:
        task_template, task_source = per_task_value(template, name, None), per_task_value(source, name, "auto")
        records, render = _task_rows(get_task(name), split, task_template, task_source)
        cap = per_task_value(per_task_cap, name, None)
        if cap is not None and cap < 1:
            raise ValueError(f"per_task_cap for {name} must be positive, got {cap}.")
        keep = min(len(records), cap) if cap else len(records)
        kept = rng.permutation(len(records))[:keep]
        if keep < len(records):  # render (and later tokenise) only the kept examples
            pools.append((render(records.select(kept)), np.arange(keep)))
        else:  # every example: render the split as stored (one cache entry for every seed)
            pools.append((render(records), kept))
        available.append(len(records))
    return pools, available


def _task_rows(task: Task, split: str, template: Any, source: Any):
    """A task's rows of ``split`` and the function rendering a selection of them into training
    examples: a built-in task's records and its template; a user's task's rendered examples, whose
    free-text answers (``generate_until``) are trained on after the task's ``target_delimiter``."""
    if task.is_builtin:
        chosen_template = get_template(template, task)  # checked before loading
        return load_records(task, split, source=source), partial(render_examples, task=task, template=chosen_template)
    examples = load_examples(task, split)
    if task.output_type == "generate_until":
        delimiter = task.target_delimiter
        examples = examples.map(lambda target: {"target": delimiter + target}, input_columns="target")
    return examples, lambda selected: selected


def _drawn_parts(
    pools: list[tuple[datasets.Dataset, np.ndarray]],
    counts: list[int],
    rng: np.random.Generator,
    tokenizer: Any,
    max_length: int,
    chat: Any = None,
    delimiters: list[str] | None = None,
) -> tuple[list[datasets.Dataset], list[int], list[int]]:
    """Each task's ``count`` examples (whole shuffled passes over its pool, then a shuffled
    remainder), tokenised; and per task how many prompts and responses were cut to fit."""
    parts, truncated, cut_responses = [], [], []
    for task_id, ((examples, pool), count) in enumerate(zip(pools, counts)):
        if count == 0:
            truncated.append(0)
            cut_responses.append(0)
            continue
        # pool[rng.permutation(n)] is what rng.permutation(pool) gives, from the same draws
        passes = [pool[rng.permutation(len(pool))] for _ in range(-(-count // len(pool)))]
        chosen = examples.select(np.concatenate(passes)[:count])
        part = chosen.map(
            _tokenize_batch,
            batched=True,
            fn_kwargs={
                "tokenizer": tokenizer,
                "max_length": max_length,
                "task_id": task_id,
                "chat": chat,
                "delimiter": delimiters[task_id] if delimiters else " ",
            },
            remove_columns=chosen.column_names,
            # datasets fingerprints a module-level function by its name, not its code: a cached result
            # would outlive a change of samora's tokenisation, so it is always recomputed (it is cheap)
            load_from_cache_file=False,
        )
        truncated.append(sum(part["prompt_truncated"]))
        cut_responses.append(sum(part["response_truncated"]))
        parts.append(part.remove_columns(["prompt_truncated", "response_truncated"]))
    return parts, truncated, cut_responses


def _warn_truncation(names: list[str], truncated: list[int], cut_responses: list[int], max_length: int) -> None:
    if any(truncated):
        logger.warning(
            "prompts cut from the left to fit max_length=%d: %s",
            max_length,
            ", ".join(f"{n}={k}" for n, k in zip(names, truncated) if k),
        )
    if any(cut_responses):
        logger.warning(
            "responses (training targets) cut at the end to fit max_length=%d: %s; raise "
            "data.max_length to train on whole answers",
            max_length,
            ", ".join(f"{n}={k}" for n, k in zip(names, cut_responses) if k),
        )


def per_task_value(value: Any, name: str, default: Any) -> Any:
    """``value``, or its entry for task ``name`` when it is a mapping keyed by task names (``default`` when
    no key names it): ``source``, ``template`` and ``per_task_cap`` are each one value or one per task."""
    if not isinstance(value, Mapping):
        return value
    return next((v for k, v in value.items() if _same_task(k, name)), default)


def _same_task(key: Any, name: str) -> bool:
    """Whether a mapping key names task ``name`` (a key naming no task matches nothing)."""
    try:
        return get_task(key).name == name
    except ValueError:
        return False


def _tokenize_batch(
    batch: dict[str, list], tokenizer: Any, max_length: int, task_id: int, chat: Any = None, delimiter: str = " "
) -> dict[str, list]:
    prompts, responses = batch["prompt"], batch["target"]
    if chat is not None:  # the answer is the assistant turn, after the template's header (no delimiter)
        pairs = [chat.training_texts(p, r.removeprefix(delimiter)) for p, r in zip(prompts, responses)]
        prompts, responses = [chat.without_added_bos(p) for p, _ in pairs], [r for _, r in pairs]
    columns = tokenize_for_training(tokenizer, prompts, responses, max_length, append_eos=chat is None)
    columns["task_ids"] = [task_id] * len(batch["prompt"])
    return columns


def _bucketed_order(stream: datasets.Dataset, window: int) -> list[int]:
    lengths = np.fromiter((len(ids) for ids in stream["input_ids"]), dtype=np.int64, count=len(stream))
    order = []
    for start in range(0, len(stream), window):
        block = np.arange(start, min(start + window, len(stream)))
        order.extend(block[np.argsort(-lengths[block], kind="stable")].tolist())
    return order
