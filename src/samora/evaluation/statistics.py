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
with replacement, and takes mean_t mean_{s, i} of the drawn values. A task scored by a corpus
metric (MCC, F1: :class:`CorpusMetric`) instead takes mean_t mean_s metric_s(drawn examples): the
metric of each drawn seed on the replicate's examples, not a mean of per-example values; its paired
test bootstraps the difference of the two rows' metrics on the same draws (:class:`PairedDifference`).
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


class SeedStatistic:
    """A task's statistic under S seeds, as :func:`bootstrap_grid` resamples it: ``shape`` (S, n),
    :meth:`seed_values` on all n examples and :meth:`on_examples` on resampled ones."""

    shape: tuple[int, int]

    def seed_values(self) -> np.ndarray:
        """(S,) the statistic of each seed on all examples."""
        raise NotImplementedError

    def on_examples(self, example_rows: np.ndarray) -> np.ndarray:
        """(S, B) the statistic of each seed on replicate b's examples ``example_rows[b]`` (B, n)."""
        raise NotImplementedError

    def value(self) -> float:
        """The point value: the mean over seeds of :meth:`seed_values`."""
        return float(np.mean(self.seed_values()))


class MeanOfExamples(SeedStatistic):
    """The mean of per-example values (S, n), e.g. 0/1 correctness: the default statistic."""

    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, dtype=float)
        self.shape = self.values.shape

    def seed_values(self) -> np.ndarray:
        return self.values.mean(axis=1)

    def on_examples(self, example_rows: np.ndarray) -> np.ndarray:
        return self.values[:, example_rows].mean(axis=2)

    def value(self) -> float:
        return self.values.mean()  # all seeds see the same n examples: the mean of the seed means


class CorpusMetric(SeedStatistic):
    """A corpus metric (:data:`CORPUS_METRICS`: ``mcc``, ``f1``) of one task's gold labels (n,) and
    S seeds' predictions (S, n), computed from confusion counts.

    ``counts[s, b, g, p]`` = sum_i m_b(i) [gold_i = g] [pred_{s,i} = p], with m_b(i) the number of
    times replicate b drew example i, so B replicates cost one (B, n) x (n, C^2) product per seed,
    not B metric calls. MCC (Gorodkin's multiclass form, as
    :func:`samora.evaluation.metrics.matthews_corrcoef`), with s = sum counts, c = trace,
    t_k = sum_p counts[k, p], p_k = sum_g counts[g, k]::

        MCC = (c s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2))   (0 if a factor is 0)

    F1 of the class 1 (:func:`samora.evaluation.metrics.f1_score`): 2 TP / (2 TP + FP + FN), 0 when
    nothing is positive. An unparsed prediction (-1) is a class of its own, as there.
    """

    POSITIVE = 1
    CHUNK = 2**22  # replicates x examples counted at once (bounds the multiplicities' memory)

    def __init__(self, metric: str, golds: Sequence[int], preds: np.ndarray):
        if metric not in CORPUS_METRICS:
            raise ValueError(f"unknown corpus metric {metric!r}; known: {', '.join(CORPUS_METRICS)}")
        golds, preds = np.asarray(golds, dtype=np.int64), np.asarray(preds, dtype=np.int64)
        if golds.ndim != 1 or preds.ndim != 2 or preds.shape[1] != len(golds) or len(golds) == 0:
            raise ValueError(
                f"{metric}: expected gold labels (n,) and predictions (seeds, n), got {golds.shape} and {preds.shape}"
            )
        self.metric, self.golds, self.preds, self.shape = metric, golds, preds, preds.shape
        classes = np.union1d(np.union1d(golds, preds), [self.POSITIVE])
        pairs = np.searchsorted(classes, golds) * len(classes) + np.searchsorted(classes, preds)  # (S, n)
        self._classes = len(classes)
        self._positive = int(np.searchsorted(classes, self.POSITIVE))
        self._pairs = np.eye(len(classes) ** 2)[pairs]  # (S, n, C^2): one-hot (gold, pred) pair per example

    def seeds(self, indices: Sequence[int]) -> CorpusMetric:
        """The same task under the seeds ``indices`` (rows of the predictions), in that order."""
        return CorpusMetric(self.metric, self.golds, self.preds[list(indices)])

    def seed_values(self) -> np.ndarray:
        return self._score(np.ones((1, self.shape[1])))[:, 0]

    def on_examples(self, example_rows: np.ndarray) -> np.ndarray:
        replicates, examples = example_rows.shape
        step = max(1, self.CHUNK // examples)
        parts = []
        for start in range(0, replicates, step):
            rows = example_rows[start : start + step]
            offsets = np.arange(len(rows))[:, None] * examples
            drawn = np.bincount((rows + offsets).ravel(), minlength=rows.size).reshape(rows.shape)
            parts.append(self._score(drawn))
        return np.concatenate(parts, axis=1)

    def _score(self, drawn: np.ndarray) -> np.ndarray:
        """(S, B) the metric from the examples' multiplicities ``drawn`` (B, n)."""
        counts = drawn.astype(float) @ self._pairs  # (S, B, C^2)
        counts = counts.reshape(*counts.shape[:2], self._classes, self._classes)  # [..., gold, pred]
        return CORPUS_METRICS[self.metric](counts, self._positive)


def _mcc_of_counts(counts: np.ndarray, positive: int) -> np.ndarray:
    total, correct = counts.sum(axis=(-2, -1)), np.trace(counts, axis1=-2, axis2=-1)
    golds, preds = counts.sum(axis=-1), counts.sum(axis=-2)
    covariance = correct * total - np.sum(preds * golds, axis=-1)
    spread = (total**2 - np.sum(preds**2, axis=-1)) * (total**2 - np.sum(golds**2, axis=-1))
    denominator = np.sqrt(spread)
    return np.divide(covariance, denominator, out=np.zeros_like(covariance), where=denominator != 0)


def _f1_of_counts(counts: np.ndarray, positive: int) -> np.ndarray:
    true_positive = counts[..., positive, positive]
    false_positive = counts[..., :, positive].sum(axis=-1) - true_positive
    false_negative = counts[..., positive, :].sum(axis=-1) - true_positive
    denominator = 2 * true_positive + false_positive + false_negative
    return np.divide(2 * true_positive, denominator, out=np.zeros_like(denominator), where=denominator != 0)


CORPUS_METRICS = {"mcc": _mcc_of_counts, "f1": _f1_of_counts}  # metric of confusion counts [..., gold, pred]


class PairedDifference(SeedStatistic):
    """``first`` minus ``second`` on the same resampled examples and seeds; a ``second`` with one
    seed (the base model) is subtracted from every seed of ``first``."""

    def __init__(self, first: SeedStatistic, second: SeedStatistic):
        self.first, self.second, self.shape = first, second, first.shape

    def seed_values(self) -> np.ndarray:
        return self.first.seed_values() - self.second.seed_values()

    def on_examples(self, example_rows: np.ndarray) -> np.ndarray:
        return self.first.on_examples(example_rows) - self.second.on_examples(example_rows)


def as_statistic(value: np.ndarray | SeedStatistic) -> SeedStatistic:
    """``value`` itself, or an array's :class:`MeanOfExamples`."""
    return value if isinstance(value, SeedStatistic) else MeanOfExamples(value)


def bootstrap_grid(
    values: Mapping[str, np.ndarray | SeedStatistic], *, samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> dict:
    """Per-task and mean-over-tasks ``{value, stderr, ci95}`` of tasks under S seeds.

    A task is a (seeds S, examples n_t) array of per-example values, scored by their mean, or any
    :class:`SeedStatistic` (e.g. :class:`CorpusMetric`: MCC of one seed's resampled examples).
    Every task must have the same S (the seeds, in the same order for every task). The draws, in
    this order: the (samples, S) seed rows, then each task's (samples, n_t) example rows. Replicate
    b of a task is mean_{s in seed_rows[b]} statistic_s(examples example_rows[b]); its point value is
    the mean over seeds of the statistic on all examples (for an array: the array's mean); the mean
    row averages the tasks. Returns ``{"tasks": {task: interval}, "mean": interval, "replicates":
    (samples,) means}``.
    """
    statistics = {task: as_statistic(value) for task, value in values.items()}
    if not statistics:
        raise ValueError("no tasks to bootstrap")
    seeds = {statistic.shape[0] for statistic in statistics.values()}
    if any(len(s.shape) != 2 or s.shape[1] == 0 for s in statistics.values()) or len(seeds) != 1:
        raise ValueError(
            "every task needs a 2-d (seeds, examples) array with the same number of seeds; got "
            f"{ {task: statistic.shape for task, statistic in statistics.items()} }"
        )
    rng = np.random.default_rng(seed)
    seed_count = seeds.pop()
    seed_rows = rng.integers(0, seed_count, size=(samples, seed_count))
    per_task, result = [], {"tasks": {}}
    for task, statistic in statistics.items():
        examples = statistic.shape[1]
        example_rows = rng.integers(0, examples, size=(samples, examples))
        seed_values = statistic.on_examples(example_rows)  # (S, samples): each seed on replicate b's examples
        replicates = np.take_along_axis(seed_values, seed_rows.T, axis=0).mean(axis=0)
        per_task.append(replicates)
        result["tasks"][task] = interval(replicates, statistic.value())
    means = np.mean(per_task, axis=0)
    result["mean"] = interval(means, np.mean([statistic.value() for statistic in statistics.values()]))
    result["replicates"] = means
    return result


def paired_test(
    values: Mapping[str, np.ndarray | SeedStatistic],
    reference: Mapping[str, np.ndarray | SeedStatistic],
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> dict:
    """Paired bootstrap test of the task statistics of ``values`` minus those of ``reference`` on
    the same examples and seeds.

    Both map task -> (seeds, examples) arrays (or :class:`SeedStatistic` of the same kind) over the
    same examples; a reference with one row (e.g. the base model, evaluated once) is paired with
    every seed. For arrays the per-example difference is bootstrapped with :func:`bootstrap_grid`;
    for other statistics the difference of the two statistics on the same resampled examples and
    seed draws (:class:`PairedDifference`). The two-sided p-value is that of the bootstrap
    distribution shifted to the null (mean 0): p = (1 + #{|d_b - d| >= |d|}) / (samples + 1).
    Returns the mean difference's ``{value, stderr, ci95}``, ``p_value``, ``significant``
    (p < 0.05, equivalently here the 95% interval excluding 0 up to bootstrap noise) and per task.
    """
    if set(values) != set(reference):
        raise ValueError(f"paired test over different tasks: {sorted(values)} vs {sorted(reference)}")
    differences = {}
    for task, mine in values.items():
        theirs = reference[task]
        if isinstance(mine, SeedStatistic) or isinstance(theirs, SeedStatistic):
            mine, theirs = as_statistic(mine), as_statistic(theirs)
            if type(mine) is not type(theirs) or getattr(mine, "metric", None) != getattr(theirs, "metric", None):
                raise ValueError(
                    f"{task}: cannot pair two different statistics ({_describe(mine)} - {_describe(theirs)})"
                )
            _check_pairable(task, mine.shape, theirs.shape)
            differences[task] = PairedDifference(mine, theirs)
            continue
        mine, theirs = np.asarray(mine, dtype=float), np.asarray(theirs, dtype=float)
        _check_pairable(task, mine.shape, theirs.shape)
        differences[task] = mine - theirs
    grid = bootstrap_grid(differences, samples=samples, seed=seed)
    difference = grid["mean"]["value"]
    extreme = np.sum(np.abs(grid["replicates"] - difference) >= abs(difference))
    p_value = float((1 + extreme) / (samples + 1))
    return {**grid["mean"], "p_value": p_value, "significant": bool(p_value < 1 - CONFIDENCE), "tasks": grid["tasks"]}


def _describe(statistic: SeedStatistic) -> str:
    return getattr(statistic, "metric", type(statistic).__name__)


def _check_pairable(task: str, shape: tuple[int, ...], other: tuple[int, ...]) -> None:
    if shape[1:] != other[1:] or other[0] not in (1, shape[0]):
        raise ValueError(
            f"{task}: cannot pair arrays of shapes {shape} and {other} "
            "(same examples; the reference has the same seeds or a single row)"
        )


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
