"""A ``generate_until`` task's entry: its examples generated, filtered and scored per metric.

Each example's prompt (``prompt``, inside the chat template when one is applied) is generated
with the task's ``generation_kwargs`` (:mod:`samora.evaluation.generate_until`), each pipeline of
its ``filter_list`` turns the text into an answer (:mod:`samora.evaluation.filters`) and each entry
of its ``metric_list`` scores every answer against the gold text ``target``
(:mod:`samora.evaluation.text_metrics`). A metric's value is the mean of its per-example scores;
its interval is the percentile bootstrap over examples
(:func:`samora.evaluation.statistics.bootstrap_metric` of :func:`mean_of_scores`).

Metric keys: the metric's name when the task has no ``filter_list`` (the one pipeline ``none``),
else lm-eval's ``"<metric>,<filter>"`` (``exact_match,strict-match``). The primary metric is the
first metric under the first pipeline. Per example the record holds the prompt, the generated
``response``, the ``filtered`` answer per pipeline, the ``gold`` text, the ``metrics`` (key ->
score, primary first), ``pred`` (the first pipeline's answer) and ``correct`` (primary score 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from samora.evaluation.filters import NO_FILTER, filter_names, filter_responses
from samora.evaluation.statistics import bootstrap_metric
from samora.evaluation.text_metrics import score_text, text_metric


def metric_entries(task: Any) -> list[dict[str, Any]]:
    """The task's ``metric_list`` entries, or one plain entry per name in ``task.metrics``."""
    entries = [dict(entry) for entry in task.metric_list] or [{"metric": name} for name in task.metrics]
    for index, entry in enumerate(entries):
        if not isinstance(entry.get("metric"), str):
            raise ValueError(f"{task.name}: metric_list entry {index} is {entry!r}; expected {{metric: <name>, ...}}")
        text_metric(entry["metric"])
    if not entries:
        raise ValueError(f"{task.name}: a generate_until task needs at least one metric (metric_list)")
    return entries


def metric_key(metric: str, pipeline: str) -> str:
    """``exact_match`` under the ``none`` pipeline, else lm-eval's ``exact_match,<pipeline>``."""
    return metric if pipeline == NO_FILTER else f"{metric},{pipeline}"


def mean_of_scores(_: np.ndarray, scores: np.ndarray) -> float:
    """A text metric's value over examples: the mean of its per-example scores (the first array,
    the golds of the choice metrics, is unused: pass the scores twice)."""
    return float(np.mean(scores))


def score_generations(
    task: Any, examples: Any, prompts: Sequence[str], responses: Sequence[str], *, samples: int, seed: int
) -> dict[str, Any]:
    """The entry fields of a generated task: ``primary_metric``, ``metrics``, ``statistics`` (each
    metric's bootstrap interval) and ``samples`` (one record per example; module docstring)."""
    entries = metric_entries(task)
    pipelines = filter_names(task.filter_list)
    golds = [str(target) for target in examples["target"]]
    answers = filter_responses(task.filter_list, responses)
    keys = [metric_key(entry["metric"], pipeline) for pipeline in pipelines for entry in entries]
    scores = {
        metric_key(entry["metric"], pipeline): np.array(
            [score_text(entry, answer[pipeline], gold) for answer, gold in zip(answers, golds)]
        )
        for pipeline in pipelines
        for entry in entries
    }
    records = [
        {
            "id": example_id,
            "prompt": prompt,
            "response": response,
            "filtered": answer,
            "gold": gold,
            "pred": answer[pipelines[0]],
            "metrics": {key: float(scores[key][i]) for key in keys},
            "correct": bool(scores[keys[0]][i] == 1.0),
        }
        for i, (example_id, prompt, response, answer, gold) in enumerate(
            zip(examples["id"], prompts, responses, answers, golds)
        )
    ]
    return {
        "primary_metric": keys[0],
        "metrics": {key: mean_of_scores(values, values) for key, values in scores.items()},
        "statistics": {
            key: bootstrap_metric(mean_of_scores, values, values, samples=samples, seed=seed)
            for key, values in scores.items()
        },
        "samples": records,
    }


def example_metric(record: Mapping[str, Any], metric: str) -> str:
    """The metric :func:`example_score` reads for ``record``: ``metric``, or for a generated example
    without it, that example's primary metric (the first it carries)."""
    scores = record.get("metrics")
    return metric if scores is None or metric in scores else next(iter(scores))


def example_score(record: Mapping[str, Any], metric: str) -> float:
    """One ``samples.jsonl`` record's score under ``metric``: a generated example's score of that
    metric (its primary one when it has no such metric), else whether a choice prediction is right
    (``pred_norm`` for ``acc_norm``, ``pred`` otherwise)."""
    if "metrics" in record:
        return float(record["metrics"][example_metric(record, metric)])
    return float(record["pred_norm" if metric == "acc_norm" else "pred"] == record["gold"])
