"""Evaluate a plain or adapted model on benchmark tasks; write and print the results.

Task routing: a model adapted by samora carries ``model.samora_adapter``, whose
``config.tasks`` lists the task names it was trained on, in task-id order. Each evaluated task is
routed with its index in that list, passed as ``task_ids`` (batch,) to ``model(...)`` and
``model.generate(...)``; a task the adapter was not trained on gets ``-1`` ("unseen": SAMoRA
uses its mean task gate; methods that need a task raise). A plain model gets no ``task_ids``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samora.data.sources import DataSourceError, load_examples, resolve_source
from samora.data.tasks import BENCHMARKS, get_task, resolve_split, resolve_tasks
from samora.data.templates import Template, get_template
from samora.evaluation.answers import UNPARSED, extract_answer
from samora.evaluation.generation import generate_responses
from samora.evaluation.loglik import choice_length, loglik_scores
from samora.evaluation.metrics import METRICS, accuracy, compute_metrics
from samora.evaluation.statistics import DEFAULT_SAMPLES, bootstrap_metric, bootstrap_task_mean

logger = logging.getLogger(__name__)

PROTOCOLS = ("loglik", "generate")
UNSEEN_TASK = -1


def evaluate(
    model: Any,
    tokenizer: Any,
    tasks: str | Sequence[str],
    *,
    protocol: str = "loglik",
    split: str = "eval",
    source: Any = "auto",
    limit: int | None = None,
    seed: int | None = None,
    batch_size: int = 8,
    template: str | Template | Mapping[str, str] | None = None,
    num_beams: int = 1,
    max_new_tokens: int = 32,
    answer_match: str = "strict",
    task_names: Sequence[str] | None = None,
    progress: bool = True,
    log_samples: bool = False,
    skip_unavailable: bool = False,
    bootstrap_samples: int = DEFAULT_SAMPLES,
) -> dict[str, Any]:
    """Score ``model`` on ``tasks`` (a benchmark name, task names or aliases) and return results.

    ``protocol="loglik"`` ranks choices by log-likelihood (reports ``acc``/``acc_norm`` and the
    task's metrics); ``"generate"`` decodes ``max_new_tokens`` tokens (greedy, or ``num_beams``
    beams) and extracts the first answer label, with ``answer_match="lenient"`` adding MTL-LoRA's
    bare-digit fallback (see :mod:`samora.evaluation.scoring`). ``split="eval"`` uses each task's
    standard evaluation split; ``limit``/``seed`` subsample as in
    :func:`samora.data.load_examples`. ``template`` and ``source`` may be one value or a task ->
    value mapping. ``task_names`` overrides the adapter's task list used for routing.
    ``skip_unavailable`` records tasks whose split no source holds as skipped instead of raising.
    ``log_samples`` keeps each task's per-example records under ``"samples"`` (see
    :func:`write_samples`).

    The result is JSON-able: protocol and settings, model and adapter identity, and per task its
    metrics, example count, split, data source, template and routed task id; each metric's
    standard error and 95% interval (``"statistics"``, a bootstrap over examples with
    ``bootstrap_samples`` resamples, seeded), the chance level, the majority-class baseline and the
    predicted next to the gold label distribution. Each benchmark average carries its own interval.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    if answer_match not in ("strict", "lenient"):
        raise ValueError(f"answer_match must be 'strict' or 'lenient', got {answer_match!r}.")
    names = resolve_tasks(tasks)
    routing = routing_tasks(model, task_names)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "protocol": protocol,
        "settings": {
            "split": split,
            "limit": limit,
            "seed": seed,
            "batch_size": batch_size,
            "bootstrap_samples": bootstrap_samples,
            **(
                {"num_beams": num_beams, "max_new_tokens": max_new_tokens, "answer_match": answer_match}
                if protocol == "generate"
                else {}
            ),
        },
        "template": _json_template(template),
        "model": model_identity(model),
        "adapter": adapter_identity(model, routing),
        "task_order": {
            bench: BENCHMARKS[bench]  # the fixed ids that "task_id" refers to
            for bench in dict.fromkeys(get_task(name).benchmark for name in names)
        },
        "tasks": {},
    }
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for name in names:
                task_started = time.perf_counter()
                results["tasks"][name] = _evaluate_task(
                    model,
                    tokenizer,
                    name,
                    protocol=protocol,
                    split=split,
                    source=_pick(source, name, "auto"),
                    template=_pick(template, name, None),
                    limit=limit,
                    seed=seed,
                    batch_size=batch_size,
                    num_beams=num_beams,
                    max_new_tokens=max_new_tokens,
                    lenient=answer_match == "lenient",
                    routing=routing,
                    progress=progress,
                    skip_unavailable=skip_unavailable,
                    bootstrap=(bootstrap_samples, seed or 0),
                )
                logger.info("%s", _task_line(name, results["tasks"][name], time.perf_counter() - task_started))
    finally:
        model.train(was_training)
    results["average"] = _averages(results["tasks"], bootstrap_samples, seed or 0)
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
    adapter = getattr(model, "samora_adapter", None)
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
    config = getattr(model, "config", None)
    first = next(model.parameters())
    return {
        "class": type(model).__name__,
        "name_or_path": getattr(config, "_name_or_path", None) or None,
        "model_type": getattr(config, "model_type", None),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(first.dtype).removeprefix("torch."),
        "device": str(first.device),
    }


def adapter_identity(model: Any, routing: list[str] | None) -> dict[str, Any] | None:
    adapter = getattr(model, "samora_adapter", None)
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


def write_results(results: dict[str, Any], path: str | Path) -> Path:
    """Write ``results`` as indented JSON (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table: one row per task (metrics in % with their 95% intervals, chance level,
    majority-class baseline, gold / predicted label counts per choice index), then the benchmark
    averages with their intervals."""
    model = results["model"]
    adapter = results.get("adapter")
    lines = [
        f"protocol: {results['protocol']}  model: {model['name_or_path'] or model['class']}"
        f"  adapter: {adapter['method'] if adapter else 'none'}"
    ]
    metric_names = sorted(
        {m for entry in results["tasks"].values() for m in entry.get("metrics", {})}, key=_metric_order
    )
    header = [
        "task",
        "split",
        "n",
        *[f"{m} [95% CI]" for m in metric_names],
        "chance",
        "majority",
        "labels gold / pred",
        "template",
    ]
    rows = []
    for name, entry in results["tasks"].items():
        if "skipped" in entry:
            rows.append([name, entry.get("split", ""), "-", *["-"] * (len(metric_names) + 3), "skipped: no data"])
            continue
        n = str(entry["n"]) + (f" ({entry['n_unparsed']} unparsed)" if entry.get("n_unparsed") else "")
        rows.append(
            [
                name,
                entry["split"],
                n,
                *[_with_interval(entry, m) for m in metric_names],
                _percent(entry.get("chance")),
                _percent(entry.get("majority_baseline")),
                _label_counts(entry.get("label_distribution")),
                entry["template"]["name"],
            ]
        )
    for benchmark, average in results.get("average", {}).items():
        ci = average.get("ci95")
        shown = f"{100 * average['value']:.2f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
        rows.append(
            [
                f"average ({benchmark})",
                "",
                str(average["n_tasks"]) + " tasks",
                *["" for _ in metric_names],
                "",
                "",
                "",
                f"{shown} mean primary",
            ]
        )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    table = [
        " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header, ["-" * w for w in widths], *rows]
    ]
    return "\n".join(lines + table)


def _with_interval(entry: dict[str, Any], metric: str) -> str:
    if metric not in entry["metrics"]:
        return ""
    shown = f"{100 * entry['metrics'][metric]:.2f}"
    ci = (entry.get("statistics") or {}).get(metric, {}).get("ci95")
    return shown + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _label_counts(distribution: dict[str, dict[str, int]] | None) -> str:
    """``"7,8 / 15,0"``: gold and predicted counts per choice index (``?n``: n unparsed)."""
    if not distribution:
        return ""
    gold, pred = distribution["gold"], distribution["pred"]
    indices = sorted({int(k) for k in (*gold, *pred) if int(k) >= 0})

    def counts(table: dict[str, int]) -> str:
        text = ",".join(str(table.get(str(i), 0)) for i in indices)
        return text + (f" ?{table['-1']}" if "-1" in table else "")

    return f"{counts(gold)} / {counts(pred)}"


def _evaluate_task(
    model,
    tokenizer,
    name,
    *,
    protocol,
    split,
    source,
    template,
    limit,
    seed,
    batch_size,
    num_beams,
    max_new_tokens,
    lenient,
    routing,
    progress,
    skip_unavailable,
    bootstrap,
) -> dict[str, Any]:
    task = get_task(name)
    task_split = resolve_split(task, split)
    chosen_template = get_template(template, task)
    if protocol == "generate" and not chosen_template.generative:
        raise ValueError(
            f"Template {chosen_template.name!r} is scored by log-likelihood only; "
            f"use protocol='loglik' or a generative template such as "
            f"'commonsense_170k' or 'glue_yes_no'."
        )
    try:
        chosen_source = resolve_source(task, task_split, source)
    except DataSourceError as err:
        if skip_unavailable:
            return {"benchmark": task.benchmark, "split": task_split, "skipped": str(err)}
        raise
    examples = load_examples(task, task_split, chosen_source, limit, seed, chosen_template)
    route = routed_task_id(routing, task.name)
    golds = list(examples["gold"])
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
    common = {"batch_size": batch_size, "task_id": route, "progress": progress, "desc": f"{task.name} {protocol}"}
    if protocol == "loglik":
        sizes = [len(choices) for choices in examples["choices"]]
        scores = loglik_scores(
            model,
            tokenizer,
            [p for prompts in examples["choice_prompts"] for p in prompts],
            [c for choices in examples["choices"] for c in choices],
            **common,
        )
        lengths = [choice_length(c) for choices in examples["choices"] for c in choices]
        bounds = np.cumsum([0, *sizes])
        preds = [int(np.argmax(scores[a:b])) for a, b in zip(bounds[:-1], bounds[1:])]
        normalised = [int(np.argmax(np.divide(scores[a:b], lengths[a:b]))) for a, b in zip(bounds[:-1], bounds[1:])]
        entry["metrics"] = {
            **compute_metrics(task.metrics, golds, preds),
            "acc_norm": compute_metrics(["acc"], golds, normalised)["acc"],
        }
        samples = [
            {"id": i, "gold": g, "pred": p, "pred_norm": q, "scores": scores[a:b]}
            for i, g, p, q, a, b in zip(examples["id"], golds, preds, normalised, bounds[:-1], bounds[1:])
        ]
    else:
        responses = generate_responses(
            model, tokenizer, examples["prompt"], num_beams=num_beams, max_new_tokens=max_new_tokens, **common
        )
        preds = [
            extract_answer(
                text,
                labels,
                ignore_case=chosen_template.ignore_case,
                whole_words=chosen_template.whole_words,
                lenient=lenient,
            )
            for text, labels in zip(responses, examples["answer_labels"])
        ]
        entry["metrics"] = compute_metrics(task.metrics, golds, preds)
        entry["n_unparsed"] = sum(pred == UNPARSED for pred in preds)
        samples = [
            {"id": i, "gold": g, "pred": p, "response": r}
            for i, g, p, r in zip(examples["id"], golds, preds, responses)
        ]
    entry.update(
        describe_predictions(
            entry["metrics"],
            golds,
            preds,
            [len(choices) for choices in examples["choices"]],
            normalised if protocol == "loglik" else None,
            *bootstrap,
        )
    )
    entry["samples"] = samples
    return entry


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
            _metric_function(name), golds, normalised if name == "acc_norm" else preds, samples=samples, seed=seed
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


def write_samples(results: dict[str, Any], path: str | Path) -> Path:
    """Write the per-example records of ``results`` (from ``evaluate(..., log_samples=True)``) as
    JSON lines, one per example, with its task, and remove them from ``results``.

    loglik records: id, task, gold, pred (argmax of the summed log-likelihoods), pred_norm (argmax
    of loglik / choice length), scores (one per choice), correct; generate records: id, task, gold,
    pred (the extracted answer index, -1 if none), response (the generated text), correct.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for task, entry in results["tasks"].items():
            for sample in entry.pop("samples", []):
                record = {"id": sample["id"], "task": task, **sample, "correct": sample["pred"] == sample["gold"]}
                if "scores" in record:
                    record["scores"] = [float(score) for score in record["scores"]]
                handle.write(json.dumps(record, default=_json_scalar) + "\n")
    temporary.replace(path)
    return path


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``samples.jsonl`` written by :func:`write_samples`."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _metric_function(name: str):
    return accuracy if name == "acc_norm" else METRICS[name]


def _counts(labels: Sequence[int]) -> dict[str, int]:
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts)}


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {value!r}")


def _averages(entries: dict[str, dict[str, Any]], samples: int, seed: int) -> dict[str, dict[str, Any]]:
    """Per benchmark: the mean of each task's primary metric and its bootstrap interval."""
    by_benchmark: dict[str, list[tuple]] = {}
    for entry in entries.values():
        if "metrics" in entry:
            primary = entry["primary_metric"]
            golds = [s["gold"] for s in entry["samples"]]
            preds = [s["pred"] for s in entry["samples"]]
            by_benchmark.setdefault(entry["benchmark"], []).append((_metric_function(primary), golds, preds))
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


def _metric_order(name: str) -> tuple[int, str]:
    order = ["acc", "acc_norm", "mcc", "f1"]
    return (order.index(name) if name in order else len(order), name)


def _pick(value: Any, name: str, default: Any) -> Any:
    """``value``, or its entry for task ``name`` when it is a mapping keyed by task names."""
    if not isinstance(value, Mapping):
        return value
    return next((v for k, v in value.items() if get_task(k).name == name), default)


def _json_template(template: Any) -> Any:
    if isinstance(template, Template):
        return template.name
    if isinstance(template, Mapping):
        return {get_task(k).name: (v.name if isinstance(v, Template) else v) for k, v in template.items()}
    return template if template is not None else "default"
