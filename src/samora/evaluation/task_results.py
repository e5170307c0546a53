"""One task's entry in the results: its examples scored under either protocol, the task's metrics,
and what to read them against (bootstrap intervals, chance level, majority baseline, label
distributions), with the per-example records under ``"samples"``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from samora.config import setting, validate_fields
from samora.data.chat import ChatFormat
from samora.data.sources import DataSourceError, load_examples, resolve_source
from samora.data.tasks import Task, get_task, resolve_split
from samora.data.templates import Template, get_template
from samora.evaluation.answers import UNPARSED, extract_answer
from samora.evaluation.generate_until import generate_until, generation_settings
from samora.evaluation.generation import generate_responses
from samora.evaluation.loglik import choice_length, loglik_scores
from samora.evaluation.metrics import compute_metrics, metric_function
from samora.evaluation.settings import EvaluationSettings
from samora.evaluation.statistics import DEFAULT_SAMPLES, bootstrap_metric
from samora.evaluation.text_scoring import metric_entries, score_generations


@dataclasses.dataclass(frozen=True)
class EvaluationOptions(EvaluationSettings):
    """How :func:`samora.evaluation.evaluate` scores every task (each field is also a keyword of it):
    the :class:`~samora.evaluation.settings.EvaluationSettings` a run configuration's ``eval`` section
    holds too, and what a run takes from its other sections or its command line.

    Attributes:
        protocol, split, limit, batch_size, num_beams, max_new_tokens: see
            :class:`~samora.evaluation.settings.EvaluationSettings`. ``"loglik"`` scores
            ``acc``/``acc_norm`` and the task's metrics; ``"generate"`` extracts the first answer label,
            with ``answer_match="lenient"`` adding MTL-LoRA's bare-digit fallback (see
            :mod:`samora.evaluation.scoring`).
        seed: subsample as in :func:`samora.data.load_examples` (with ``limit``); the bootstrap
            resamples are seeded with ``seed or 0``.
        progress: show a progress bar per task.
        skip_unavailable: record a task whose split no source holds as skipped instead of raising.
        bootstrap_samples: resamples of each metric's bootstrap interval.
        chat_template: score every prompt inside the tokenizer's chat template, as lm-eval's
            ``--apply_chat_template`` does (:class:`samora.data.chat.ChatFormat`): choices follow the
            assistant header without the target delimiter, generation also stops at the end of turn.
        system_prompt: the system turn of the chat template (lm-eval's ``--system_instruction``).
    """

    seed: int | None = None
    answer_match: str = setting("strict", choices=("strict", "lenient"))
    progress: bool = True
    skip_unavailable: bool = False
    bootstrap_samples: int = DEFAULT_SAMPLES
    chat_template: bool = False
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        validate_fields(self)  # every field's declared rule, as a method config checks its own

    @property
    def bootstrap_seed(self) -> int:
        return self.seed or 0

    def settings(self) -> dict[str, Any]:
        """The options recorded under ``"settings"`` in the results (generation's only for it)."""
        generation = {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "answer_match": self.answer_match,
        }
        return {
            "split": self.split,
            "limit": self.limit,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "bootstrap_samples": self.bootstrap_samples,
            **(generation if self.protocol == "generate" else {}),
            **({"chat_template": True, "system_prompt": self.system_prompt} if self.chat_template else {}),
        }


class _Predictions(NamedTuple):
    """One protocol's output for a task."""

    fields: dict[str, Any]  # the entry's "metrics" (and generation's "n_unparsed")
    preds: list[int]
    normalised: list[int] | None  # loglik's length-normalised predictions (acc_norm)
    samples: list[dict[str, Any]]  # one record per example


def evaluate_task(
    model: Any,
    tokenizer: Any,
    name: str,
    options: EvaluationOptions,
    *,
    source: Any,
    template: str | Template | Mapping[str, str] | None,
    route: int | None,
) -> dict[str, Any]:
    """The results entry of task ``name``: its ``options.split`` from ``source`` rendered with
    ``template``, scored under ``options.protocol`` with task id ``route`` (``None``: no task
    ids). A split that no source holds gives an entry with ``"skipped"`` (why) under
    ``options.skip_unavailable``, else the :class:`samora.data.sources.DataSourceError`."""
    task = get_task(name)
    task_split = resolve_split(task, options.split)
    chosen_template = get_template(template, task)
    if options.protocol == "generate" and task.output_type == "multiple_choice" and not chosen_template.generative:
        raise ValueError(
            f"Template {chosen_template.name!r} is scored by log-likelihood only; "
            f"use protocol='loglik' or a generative template such as "
            f"'commonsense_170k' or 'glue_yes_no'."
        )
    try:
        chosen_source = resolve_source(task, task_split, source)
    except DataSourceError as err:
        if options.skip_unavailable:
            return {"benchmark": task.benchmark, "split": task_split, "skipped": str(err)}
        raise
    examples = load_examples(task, task_split, chosen_source, options.limit, options.seed, chosen_template)
    entry: dict[str, Any] = {
        "benchmark": task.benchmark,
        "task_id": task.task_id,
        "routed_task_id": route,
        "split": task_split,
        "source": chosen_source.description,
        "template": chosen_template.spec(task.name),
        "n": len(examples),
        "primary_metric": task.primary_metric,
    }
    entry.update(score_examples(model, tokenizer, task, examples, chosen_template, options, route))
    return entry


def score_examples(
    model: Any,
    tokenizer: Any,
    task: Task,
    examples: Any,
    template: Template,
    options: EvaluationOptions,
    route: int | None,
) -> dict[str, Any]:
    """The scored fields of a task's entry (metrics, their intervals, per-example ``samples``...)
    from its rendered ``examples``, by ``task.output_type``: ``generate_until`` examples are
    generated and scored by text metrics (:mod:`samora.evaluation.text_scoring`, whatever
    ``options.protocol``), ``multiple_choice`` ones under ``options.protocol``."""
    if task.output_type == "generate_until":
        return _score_by_generation_until(model, tokenizer, task, examples, options, route)
    if task.output_type != "multiple_choice":
        raise ValueError(
            f"{task.name}: output_type {task.output_type!r} is not supported; use multiple_choice or generate_until"
        )
    predicted = _predict(model, tokenizer, task, examples, template, options, route)
    fields = dict(predicted.fields)
    golds, n_choices = list(examples["gold"]), [len(choices) for choices in examples["choices"]]
    fields.update(
        describe_predictions(
            fields["metrics"],
            golds,
            predicted.preds,
            n_choices,
            predicted.normalised,
            options.bootstrap_samples,
            options.bootstrap_seed,
        )
    )
    fields["samples"] = predicted.samples
    return fields


def _score_by_generation_until(
    model: Any, tokenizer: Any, task: Task, examples: Any, options: EvaluationOptions, route: int | None
) -> dict[str, Any]:
    """Generate each example's prompt with the task's generation_kwargs, routed to ``route``, then
    filter and score the texts (:func:`samora.evaluation.text_scoring.score_generations`); its
    metrics and generation settings are checked before anything is generated."""
    metric_entries(task)
    settings = generation_settings(task.generation_kwargs, task.name)
    prompts, stop_token_ids = list(examples["prompt"]), []
    chat = _chat_format(tokenizer, options)
    if chat is not None:
        prompts = [chat.prompt(prompt) for prompt in prompts]
        settings = settings._replace(until=(*settings.until, *chat.stop_strings()))
        stop_token_ids = chat.stop_token_ids()
    responses = generate_until(
        model,
        tokenizer,
        prompts,
        settings,
        stop_token_ids=stop_token_ids,
        batch_size=options.batch_size,
        task_id=route,
        progress=options.progress,
        desc=f"{task.name} generate_until",
    )
    return score_generations(
        task, examples, prompts, responses, samples=options.bootstrap_samples, seed=options.bootstrap_seed
    )


def _predict(
    model: Any,
    tokenizer: Any,
    task: Task,
    examples: Any,
    template: Template,
    options: EvaluationOptions,
    route: int | None,
) -> _Predictions:
    """Score ``examples`` under ``options.protocol``, ``options.batch_size`` requests per forward."""
    common = {
        "batch_size": options.batch_size,
        "task_id": route,
        "progress": options.progress,
        "desc": f"{task.name} {options.protocol}",
    }
    chat = _chat_format(tokenizer, options)
    if options.protocol == "loglik":
        return _predict_by_loglik(model, tokenizer, task, examples, chat, common)
    return _predict_by_generation(model, tokenizer, task, examples, template, options, chat, common)


def _chat_format(tokenizer: Any, options: EvaluationOptions) -> ChatFormat | None:
    return ChatFormat(tokenizer, options.system_prompt) if options.chat_template else None


def _predict_by_loglik(
    model: Any, tokenizer: Any, task: Task, examples: Any, chat: ChatFormat | None, common: dict[str, Any]
) -> _Predictions:
    """argmax over each example's choices of the summed log-likelihoods (the task's metrics) and of
    those divided by the choices' lengths without the target delimiter (``acc_norm``); inside the
    chat template (``chat``) as :meth:`samora.data.chat.ChatFormat.loglik_request` says."""
    golds = list(examples["gold"])
    sizes = [len(choices) for choices in examples["choices"]]
    contexts = [p for prompts in examples["choice_prompts"] for p in prompts]
    continuations = [c for choices in examples["choices"] for c in choices]
    if chat is not None:
        requests = [chat.loglik_request(p, c, task.target_delimiter) for p, c in zip(contexts, continuations)]
        contexts, continuations = [p for p, _ in requests], [c for _, c in requests]
    scores = loglik_scores(model, tokenizer, contexts, continuations, **common)
    lengths = [choice_length(c, task.target_delimiter) for choices in examples["choices"] for c in choices]
    bounds = np.cumsum([0, *sizes])
    preds = [int(np.argmax(scores[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
    normalised = [int(np.argmax(np.divide(scores[a:b], lengths[a:b]))) for a, b in zip(bounds[:-1], bounds[1:])]
    metrics = {
        **compute_metrics([name for name in task.metrics if name != "acc_norm"], golds, preds),
        "acc_norm": compute_metrics(["acc"], golds, normalised)["acc"],
    }
    samples = [
        {"id": i, "gold": g, "pred": p, "pred_norm": q, "scores": scores[a:b]}
        for i, g, p, q, a, b in zip(examples["id"], golds, preds, normalised, bounds[:-1], bounds[1:])
    ]
    return _Predictions({"metrics": metrics}, preds, normalised, samples)


def _predict_by_generation(
    model: Any,
    tokenizer: Any,
    task: Task,
    examples: Any,
    template: Template,
    options: EvaluationOptions,
    chat: ChatFormat | None,
    common: dict[str, Any],
) -> _Predictions:
    """The first answer label in each generated response (``-1``: none), the task's metrics and the
    number of responses without one."""
    golds = list(examples["gold"])
    prompts = [chat.prompt(p) for p in examples["prompt"]] if chat is not None else examples["prompt"]
    responses = generate_responses(
        model,
        tokenizer,
        prompts,
        num_beams=options.num_beams,
        max_new_tokens=options.max_new_tokens,
        **common,
    )
    preds = [
        extract_answer(
            text,
            labels,
            ignore_case=template.ignore_case,
            whole_words=template.whole_words,
            lenient=options.answer_match == "lenient",
        )
        for text, labels in zip(responses, examples["answer_labels"])
    ]
    fields = {
        "metrics": compute_metrics(task.metrics, golds, preds),
        "n_unparsed": sum(pred == UNPARSED for pred in preds),
    }
    samples = [
        {"id": i, "gold": g, "pred": p, "response": r} for i, g, p, r in zip(examples["id"], golds, preds, responses)
    ]
    return _Predictions(fields, preds, None, samples)


def describe_predictions(
    metrics: Mapping[str, float],
    golds: Sequence[int],
    preds: Sequence[int],
    n_choices: Sequence[int],
    normalised: Sequence[int] | None,
    samples: int,
    seed: int,
) -> dict[str, Any]:
    """What to read a task's metrics against: their bootstrap intervals, the chance level
    (mean of 1 / n_choices), the majority-class baseline (accuracy of always answering the most
    frequent gold index) and the gold and predicted label distributions (index -> count; ``-1`` is
    an unparsed generation)."""
    statistics = {
        name: bootstrap_metric(
            metric_function(name), golds, normalised if name == "acc_norm" else preds, samples=samples, seed=seed
        )
        for name in metrics
    }
    distribution = {"gold": _counts(golds), "pred": _counts(preds)}
    if normalised is not None:
        distribution["pred_norm"] = _counts(normalised)
    return {
        "statistics": statistics,
        "chance": float(np.mean([1 / n for n in n_choices])),
        "majority_baseline": float(max(np.bincount(golds)) / len(golds)),
        "label_distribution": distribution,
    }


def _counts(labels: Sequence[int]) -> dict[str, int]:
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts)}
