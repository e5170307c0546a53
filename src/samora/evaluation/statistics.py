"""Uncertainty of evaluation numbers: seeded bootstrap over examples (and seeds), paired tests.

Per task (one evaluation, n examples): the metric is recomputed on B resamples of the n
(gold, prediction) pairs drawn with replacement. The standard error is the standard deviation of the
B replicates; the 95% interval is their 2.5th and 97.5th percentiles (the percentile bootstrap, as
lm-evaluation-harness reports for non-mean metrics). For a mean metric such as accuracy the
bootstrap standard error tends to the sample standard error sqrt(p (1 - p) / n).

Mean over tasks: replicate b resamples the examples of every task independently, computes each
task's metric and averages them; the interval of the mean comes from those B averages, so it reflects
the examples of all tasks at once (not a spread across tasks).

Grids of runs (:func:`bootstrap_grid`): a task's values form an array (seeds S, examples n), e.g.
per-example correctness of one method under S training seeds, or the difference of two methods'
correctness on the same examples and seeds (a paired test). Replicate b draws S seeds with
replacement (shared by every task: one seed's run answers all tasks) and n_t examples of each task
with replacement, and takes mean_t mean_{s, i} of the drawn values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

DEFAULT_SAMPLES = 1000
CONFIDENCE = 0.95
Metric = Callable[[np.ndarray, np.ndarray], float]


def interval(replicates: np.ndarray, value: float) -> dict[str, float | list[float]]:
    """``{value, stderr, ci95}`` from bootstrap replicates (percentile interval)."""
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return {"value": float(value), "stderr": float(np.std(replicates, ddof=1)), "ci95": [float(low), float(high)]}


def metric_replicates(
    metric: Metric, golds: Sequence[int], preds: Sequence[int], *, samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> np.ndarray:
    """(samples,) values of ``metric`` on resamples of the (gold, pred) pairs, seeded."""
    golds, preds = np.asarray(golds), np.asarray(preds)
    if golds.shape != preds.shape or golds.ndim != 1 or len(golds) == 0:
        raise ValueError(
            f"expected two equally long, non-empty label lists, got shapes {golds.shape} and {preds.shape}"
        )
    if samples < 2:
        raise ValueError(f"the bootstrap needs at least 2 resamples, got samples={samples}")
    rows = np.random.default_rng(seed).integers(0, len(golds), size=(samples, len(golds)))
    return np.array([metric(golds[row], preds[row]) for row in rows])


def bootstrap_metric(
    metric: Metric, golds: Sequence[int], preds: Sequence[int], *, samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> dict:
    """``{value, stderr, ci95}`` of ``metric(golds, preds)`` by a seeded bootstrap over examples."""
    replicates = metric_replicates(metric, golds, preds, samples=samples, seed=seed)
    return interval(replicates, metric(np.asarray(golds), np.asarray(preds)))


def bootstrap_task_mean(
    tasks: Sequence[tuple[Metric, Sequence[int], Sequence[int]]], *, samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> dict:
    """``{value, stderr, ci95}`` of the mean over tasks of each task's metric.

    ``tasks`` holds one ``(metric, golds, preds)`` per task; task k is resampled with seed
    ``(seed, k)``, independently of the others.
    """
    if not tasks:
        raise ValueError("no tasks to average")
    per_task = [
        metric_replicates(metric, golds, preds, samples=samples, seed=[seed, k])
        for k, (metric, golds, preds) in enumerate(tasks)
    ]
    value = np.mean([metric(np.asarray(g), np.asarray(p)) for metric, g, p in tasks])
    return interval(np.mean(per_task, axis=0), value)


def bootstrap_grid(values: Mapping[str, np.ndarray], *, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict:
    """Per-task and mean-over-tasks ``{value, stderr, ci95}`` of arrays (seeds S, examples n_t).

    Every array must have the same S (the seeds, in the same order for every task). The point value
    of a task is the mean of its array; the mean is the average of the task values. Returns
    ``{"tasks": {task: interval}, "mean": interval, "replicates": (samples,) means}``.
    """
    arrays = {task: np.asarray(array, dtype=float) for task, array in values.items()}
    if not arrays:
        raise ValueError("no tasks to bootstrap")
    seeds = {array.shape[0] for array in arrays.values()}
    if any(array.ndim != 2 or array.shape[1] == 0 for array in arrays.values()) or len(seeds) != 1:
        raise ValueError(
            "every task needs a 2-d (seeds, examples) array with the same number of seeds; got "
            f"{ {task: array.shape for task, array in arrays.items()} }"
        )
    rng = np.random.default_rng(seed)
    seed_rows = rng.integers(0, seeds.pop(), size=(samples, next(iter(arrays.values())).shape[0]))
    per_task, result = [], {"tasks": {}}
    for task, array in arrays.items():
        example_rows = rng.integers(0, array.shape[1], size=(samples, array.shape[1]))
        seed_means = array[:, example_rows].mean(axis=2)  # (S, samples): each seed on replicate b's examples
        replicates = np.take_along_axis(seed_means, seed_rows.T, axis=0).mean(axis=0)
        per_task.append(replicates)
        result["tasks"][task] = interval(replicates, array.mean())
    means = np.mean(per_task, axis=0)
    result["mean"] = interval(means, np.mean([array.mean() for array in arrays.values()]))
    result["replicates"] = means
    return result


def paired_test(
    values: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> dict:
    """Paired bootstrap test of mean(values) - mean(reference) on the same examples and seeds.

    Both map task -> (seeds, examples) arrays over the same examples; a reference with one row (e.g.
    the base model, evaluated once) is paired with every seed. The difference per example and seed is
    bootstrapped with :func:`bootstrap_grid`. The two-sided p-value is that of the bootstrap
    distribution shifted to the null (mean 0): p = (1 + #{|d_b - d| >= |d|}) / (samples + 1).
    Returns the mean difference's ``{value, stderr, ci95}``, ``p_value``, ``significant``
    (p < 0.05, equivalently here the 95% interval excluding 0 up to bootstrap noise) and per task.
    """
    if set(values) != set(reference):
        raise ValueError(f"paired test over different tasks: {sorted(values)} vs {sorted(reference)}")
    differences = {}
    for task, array in values.items():
        array, other = np.asarray(array, dtype=float), np.asarray(reference[task], dtype=float)
        if array.shape[1:] != other.shape[1:] or other.shape[0] not in (1, array.shape[0]):
            raise ValueError(
                f"{task}: cannot pair arrays of shapes {array.shape} and {other.shape} "
                "(same examples; the reference has the same seeds or a single row)"
            )
        differences[task] = array - other
    grid = bootstrap_grid(differences, samples=samples, seed=seed)
    difference = grid["mean"]["value"]
    extreme = np.sum(np.abs(grid["replicates"] - difference) >= abs(difference))
    p_value = float((1 + extreme) / (samples + 1))
    return {**grid["mean"], "p_value": p_value, "significant": bool(p_value < 1 - CONFIDENCE), "tasks": grid["tasks"]}


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of m p-values for testing them as one family (Holm 1979).

    With the p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of the i-th is
    max_{j <= i} min(1, (m - j + 1) p_(j)); rejecting where it is below alpha keeps the chance of any
    false rejection among the m tests at most alpha, whatever their dependence. Returned in the order
    given. A bootstrap p-value is at least 1 / (samples + 1), so its adjusted value is at least
    m / (samples + 1): a large family needs enough bootstrap samples to reach 0.05 at all.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must be a flat sequence of numbers in [0, 1], got {list(p_values)}")
    order = np.argsort(p, kind="stable")
    steps = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(steps)
    return [float(value) for value in adjusted]
