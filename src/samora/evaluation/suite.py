"""Evaluate a plain or adapted model on benchmark tasks; write and print the results.

Task routing: a model adapted by samora carries ``model.samora_adapter``, whose
``config.tasks`` lists the task names it was trained on, in task-id order. Each evaluated task is
routed with its index in that list, passed as ``task_ids`` (batch,) to ``model(...)`` and
``model.generate(...)``; a task the adapter was not trained on gets ``-1`` ("unseen": SAMoRA
uses its mean task gate; methods that need a task raise). A plain model gets no ``task_ids``.

One task's scoring lives in :mod:`samora.evaluation.task_results`, the table in
:mod:`samora.evaluation.results_table` and the files in :mod:`samora.evaluation.results_files`
(their public names stay importable from here).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from samora.cache import bundled_model_name
from samora.data.mixing import per_task_value
from samora.data.tasks import benchmark_tasks, get_task, resolve_tasks
from samora.data.templates import Template
from samora.evaluation.metrics import metric_function
from samora.evaluation.results_files import read_samples, write_results, write_samples
from samora.evaluation.results_table import format_table
from samora.evaluation.settings import PROTOCOLS
from samora.evaluation.statistics import bootstrap_task_mean
from samora.evaluation.task_results import EvaluationOptions, evaluate_task
from samora.evaluation.text_scoring import mean_of_scores
from samora.inject import adapter_or_none
from samora.routing import UNSEEN_TASK

__all__ = [
    "PROTOCOLS",
    "EvaluationOptions",
    "UNSEEN_TASK",
    "adapter_identity",
    "evaluate",
    "format_table",
    "model_identity",
    "read_samples",
    "routed_task_id",
    "routing_tasks",
    "write_results",
    "write_samples",
]

logger = logging.getLogger(__name__)


def evaluate(
    model: Any,
    tokenizer: Any,
    tasks: str | Sequence[str],
    options: EvaluationOptions | None = None,
    *,
    source: Any = "auto",
    template: str | Template | Mapping[str, str] | None = None,
    task_names: Sequence[str] | None = None,
    log_samples: bool = False,
    **option_values: Any,
) -> dict[str, Any]:
    """Score ``model`` on ``tasks`` (a benchmark name, task names or aliases) and return results.

    Args:
        options: how to score (:class:`EvaluationOptions`: protocol, split, limit, seed, batch size,
            decoding, bootstrap; default: its defaults).
        source / template: where the examples come from and how they are prompted; one value or a
            task -> value mapping (:func:`samora.data.load_examples`, :func:`samora.data.get_template`).
        task_names: overrides the adapter's task list used for routing.
        log_samples: keep each task's per-example records under ``"samples"`` (see :func:`write_samples`).
        **option_values: any :class:`EvaluationOptions` field (``protocol="generate"``, ``limit=100``...),
            over ``options``.

    The result is JSON-able: protocol and settings, model and adapter identity, and per task its
    metrics, example count, split, data source, template and routed task id; each metric's
    standard error and 95% interval (``"statistics"``, a bootstrap over examples with
    ``bootstrap_samples`` resamples, seeded), the chance level, the majority-class baseline and the
    predicted next to the gold label distribution. Each benchmark average carries its own interval.
    """
    options = _with_values(options or EvaluationOptions(), option_values)
    names = resolve_tasks(tasks)
    routing = routing_tasks(model, task_names)
    started = time.perf_counter()
    results = _results_header(model, names, routing, options, template)
    results["tasks"] = _evaluate_tasks(model, tokenizer, names, routing, options, source, template)
    return _finish_results(results, options, log_samples, started)


def _with_values(options: EvaluationOptions, values: dict[str, Any]) -> EvaluationOptions:
    """``options`` with the fields named in ``values`` replaced; a name that is not a field is a
    ``TypeError`` listing the fields."""
    fields = [field.name for field in dataclasses.fields(EvaluationOptions)]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise TypeError(f"evaluate() got unexpected keyword argument(s) {unknown}; EvaluationOptions fields: {fields}")
    return dataclasses.replace(options, **values)


def _results_header(
    model: Any, names: list[str], routing: list[str] | None, options: EvaluationOptions, template: Any
) -> dict[str, Any]:
    """What was evaluated and how: protocol, settings, template, model and adapter identity, and
    the fixed task order of each benchmark evaluated."""
    return {
        "protocol": options.protocol,
        "settings": options.settings(),
        "template": _json_template(template),
        "model": model_identity(model),
        "adapter": adapter_identity(model, routing),
        "task_order": {
            bench: benchmark_tasks(bench)  # the fixed ids that "task_id" refers to
            for bench in dict.fromkeys(get_task(name).benchmark for name in names)
        },
    }


def _evaluate_tasks(
    model: Any,
    tokenizer: Any,
    names: list[str],
    routing: list[str] | None,
    options: EvaluationOptions,
    source: Any,
    template: Any,
) -> dict[str, dict[str, Any]]:
    """Each task's entry (:func:`samora.evaluation.task_results.evaluate_task`), scored in eval
    mode without gradients (the model's mode is restored after), with one INFO line per task."""
    entries: dict[str, dict[str, Any]] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for name in names:
                task_started = time.perf_counter()
                entries[name] = evaluate_task(
                    model,
                    tokenizer,
                    name,
                    options,
                    source=per_task_value(source, name, "auto"),
                    template=per_task_value(template, name, None),
                    route=routed_task_id(routing, name),
                )
                logger.info("%s", _task_line(name, entries[name], time.perf_counter() - task_started))
    finally:
        model.train(was_training)
    return entries


def _finish_results(
    results: dict[str, Any], options: EvaluationOptions, log_samples: bool, started: float
) -> dict[str, Any]:
    """Add the benchmark averages, drop the per-example records unless ``log_samples``, and stamp
    the duration and the creation time."""
    results["average"] = _averages(results["tasks"], options.bootstrap_samples, options.bootstrap_seed)
    if not log_samples:
        for entry in results["tasks"].values():
            entry.pop("samples", None)
    results["duration_s"] = round(time.perf_counter() - started, 3)
    results["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return results


def _task_line(name: str, entry: dict[str, Any], seconds: float) -> str:
    """``arc_easy: acc 43.0 (100 examples, 12 s)``, or why the task was skipped."""
    if "skipped" in entry:
        return f"{name}: skipped ({entry['skipped']})"
    metric, value = entry["primary_metric"], entry.get("metrics", {}).get(entry["primary_metric"])
    score = f" {metric} {100 * value:.1f}" if value is not None else ""
    return f"{name}:{score} ({entry['n']} examples, {seconds:.0f} s)"


def routing_tasks(model: Any, task_names: Sequence[str] | None = None) -> list[str] | None:
    """The adapter's task names in id order (``None`` for a plain model)."""
    adapter = adapter_or_none(model)
    if adapter is None:
        if task_names is not None:
            raise ValueError(
                "task_names only applies to a model adapted by samora (it has no "
                "model.samora_adapter); a plain model is evaluated without task ids."
            )
        return None
    return list(task_names if task_names is not None else adapter.config.tasks)


def routed_task_id(routing: list[str] | None, task: str) -> int | None:
    """Index of ``task`` in the adapter's task list (names or aliases), -1 if absent, ``None``
    for a plain model."""
    if routing is None:
        return None
    canonical = []
    for name in routing:
        try:
            canonical.append(get_task(name).name)
        except ValueError:  # an adapter task outside the registry keeps its own name
            canonical.append(name)
    return canonical.index(task) if task in canonical else UNSEEN_TASK


def model_identity(model: Any) -> dict[str, Any]:
    """What results files record of the evaluated model; the bundled SmolLM2 by its name
    (``smollm2-135m-instruct``), not by this machine's cache path, as adapters record it."""
    config = getattr(model, "config", None)
    first = next(model.parameters())
    name_or_path = getattr(config, "_name_or_path", None) or None
    return {
        "class": type(model).__name__,
        "name_or_path": bundled_model_name(name_or_path) or name_or_path,
        "model_type": getattr(config, "model_type", None),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(first.dtype).removeprefix("torch."),
        "device": str(first.device),
    }


def adapter_identity(model: Any, routing: list[str] | None) -> dict[str, Any] | None:
    adapter = adapter_or_none(model)
    if adapter is None:
        return None
    config = adapter.config
    if hasattr(config, "to_dict"):
        fields = config.to_dict()
    elif dataclasses.is_dataclass(config):
        fields = dataclasses.asdict(config)
    else:
        fields = dict(vars(config))
    return {
        "method": getattr(config, "method", None),
        "routing_tasks": routing,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "config": json.loads(json.dumps(fields, default=str)),
    }


def _averages(entries: dict[str, dict[str, Any]], samples: int, seed: int) -> dict[str, dict[str, Any]]:
    """Per benchmark: the mean of each task's primary metric and its bootstrap interval."""
    by_benchmark: dict[str, list[tuple]] = {}
    for entry in entries.values():
        if "metrics" in entry:
            by_benchmark.setdefault(entry["benchmark"], []).append(_primary_values(entry))
    averages = {}
    for benchmark, tasks in by_benchmark.items():
        mean = bootstrap_task_mean(tasks, samples=samples, seed=seed)
        averages[benchmark] = {
            "value": mean["value"],
            "n_tasks": len(tasks),
            "metric": "mean of each task's primary metric",
            "stderr": mean["stderr"],
            "ci95": mean["ci95"],
        }
    return averages


def _primary_values(entry: dict[str, Any]) -> tuple:
    """``(metric, golds, preds)`` of an entry's primary metric over its examples; a generated task's
    are its per-example scores (:func:`samora.evaluation.text_scoring.mean_of_scores`)."""
    primary, samples = entry["primary_metric"], entry["samples"]
    if samples and "metrics" in samples[0]:
        scores = [sample["metrics"][primary] for sample in samples]
        return mean_of_scores, scores, scores
    return metric_function(primary), [s["gold"] for s in samples], [s["pred"] for s in samples]


def _json_template(template: Any) -> Any:
    if isinstance(template, Template):
        return template.name
    if isinstance(template, Mapping):
        return {get_task(k).name: (v.name if isinstance(v, Template) else v) for k, v in template.items()}
    return template if template is not None else "default"
