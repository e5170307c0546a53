"""Bootstrap intervals, the mean-over-tasks interval, grids over seeds and the paired test."""

import numpy as np
import pytest

from samora.evaluation.metrics import accuracy, f1_score, matthews_corrcoef
from samora.evaluation.statistics import (
    bootstrap_grid,
    bootstrap_metric,
    bootstrap_task_mean,
    holm_adjusted,
    paired_test,
)


def labels(n, accuracy_target, seed=0, classes=2):
    rng = np.random.default_rng(seed)
    golds = rng.integers(0, classes, n)
    wrong = rng.random(n) > accuracy_target
    return golds, np.where(wrong, (golds + 1) % classes, golds)


def test_accuracy_interval_matches_the_binomial_standard_error():
    golds, preds = labels(400, 0.7)
    result = bootstrap_metric(accuracy, golds, preds, samples=4000, seed=1)
    p = accuracy(golds, preds)
    assert result["value"] == p
    assert result["stderr"] == pytest.approx(np.sqrt(p * (1 - p) / 400), rel=0.08)
    low, high = result["ci95"]
    assert low < p < high and high - low == pytest.approx(2 * 1.96 * result["stderr"], rel=0.1)


def test_interval_covers_the_true_accuracy_at_about_95_percent():
    covered = 0
    for trial in range(100):
        golds, preds = labels(120, 0.6, seed=trial)
        low, high = bootstrap_metric(accuracy, golds, preds, samples=500, seed=trial)["ci95"]
        covered += low <= 0.6 <= high
    assert 88 <= covered <= 99  # binomial(100, 0.95) lies there with probability > 0.99


def test_seeded_bootstrap_is_reproducible_and_the_seed_matters():
    golds, preds = labels(50, 0.6)
    first = bootstrap_metric(matthews_corrcoef, golds, preds, seed=3)
    assert first == bootstrap_metric(matthews_corrcoef, golds, preds, seed=3)
    assert first["ci95"] != bootstrap_metric(matthews_corrcoef, golds, preds, seed=4)["ci95"]


@pytest.mark.parametrize("metric", [matthews_corrcoef, f1_score])
def test_mcc_and_f1_intervals_bracket_the_value_and_shrink_with_n(metric):
    small = bootstrap_metric(metric, *labels(60, 0.75), seed=0)
    large = bootstrap_metric(metric, *labels(2000, 0.75), seed=0)
    for result in (small, large):
        assert result["ci95"][0] < result["value"] < result["ci95"][1]
    assert large["stderr"] < small["stderr"] / 3


def test_perfect_predictions_have_a_zero_width_interval():
    golds = np.arange(30) % 3
    assert bootstrap_metric(accuracy, golds, golds)["ci95"] == [1.0, 1.0]


def test_mean_over_tasks_interval_is_narrower_than_each_task():
    tasks = [(accuracy, *labels(200, p, seed=k)) for k, p in enumerate([0.5, 0.6, 0.7, 0.8])]
    mean = bootstrap_task_mean(tasks, samples=2000, seed=0)
    singles = [bootstrap_metric(accuracy, g, p, samples=2000, seed=0)["stderr"] for _, g, p in tasks]
    assert mean["value"] == pytest.approx(np.mean([accuracy(g, p) for _, g, p in tasks]))
    # independent tasks: the standard error of a mean of 4 is sqrt(sum se_k^2) / 4
    assert mean["stderr"] == pytest.approx(np.sqrt(np.sum(np.square(singles))) / 4, rel=0.1)
    assert mean["ci95"][0] < mean["value"] < mean["ci95"][1]


def test_grid_over_seeds_and_examples():
    rng = np.random.default_rng(0)
    values = {"a": (rng.random((3, 150)) < 0.6).astype(float), "b": (rng.random((3, 90)) < 0.4).astype(float)}
    grid = bootstrap_grid(values, samples=1000, seed=0)
    assert grid["tasks"]["a"]["value"] == pytest.approx(values["a"].mean())
    assert grid["mean"]["value"] == pytest.approx((values["a"].mean() + values["b"].mean()) / 2)
    assert grid["replicates"].shape == (1000,)
    with pytest.raises(ValueError, match="same number of seeds"):
        bootstrap_grid({"a": np.ones((3, 5)), "b": np.ones((2, 5))})


def test_paired_test_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    reference = {t: (rng.random((2, 300)) < 0.5).astype(float) for t in ("a", "b")}
    better = {t: np.maximum(array, rng.random(array.shape) < 0.2) for t, array in reference.items()}
    found = paired_test(better, reference, samples=2000, seed=0)
    assert found["value"] > 0.05 and found["significant"] and found["p_value"] < 0.01
    assert found["ci95"][0] > 0
    same = paired_test(reference, reference, samples=500, seed=0)
    assert same["value"] == 0 and not same["significant"] and same["p_value"] == 1.0
    noisy = {t: (rng.random(array.shape) < 0.5).astype(float) for t, array in reference.items()}
    null = paired_test(noisy, reference, samples=2000, seed=0)
    assert null["ci95"][0] < 0 < null["ci95"][1] or not null["significant"]


def test_paired_test_against_a_single_row_reference():
    rng = np.random.default_rng(1)
    base = {"a": (rng.random((1, 200)) < 0.3).astype(float)}
    method = {"a": np.repeat(np.ones((1, 200)), 3, axis=0)}
    result = paired_test(method, base, samples=500, seed=0)
    assert result["value"] == pytest.approx(1 - base["a"].mean()) and result["significant"]
    with pytest.raises(ValueError, match="cannot pair"):
        paired_test({"a": np.ones((3, 200))}, {"a": np.ones((2, 200))})


def test_holm_adjustment_on_a_worked_example():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06
    assert holm_adjusted([0.03, 0.04, 0.01, 0.005]) == pytest.approx([0.06, 0.06, 0.03, 0.02])
    assert holm_adjusted([0.5, 0.9]) == [1.0, 1.0]
    assert holm_adjusted([]) == []


def test_holm_adjustment_agrees_with_its_definition_term_by_term():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.random(12), [0.2, 0.2]])  # ties included
    ranked = sorted(p)
    m = len(p)
    expected = [max(min(1.0, (m - j) * ranked[j]) for j in range(ranked.index(value) + 1)) for value in p]
    assert holm_adjusted(p) == pytest.approx(expected)


def test_holm_keeps_the_familywise_error_under_alpha_when_every_null_holds():
    rng = np.random.default_rng(4)
    families = rng.random((4000, 20))  # 20 true nulls per family: uniform p-values
    any_rejected = np.mean([min(holm_adjusted(family)) < 0.05 for family in families])
    raw_rejected = np.mean((families < 0.05).any(axis=1))
    assert any_rejected < 0.06 and raw_rejected > 0.6


def test_holm_refuses_what_is_not_a_p_value():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        holm_adjusted([0.2, 1.5])
