"""The bootstrap of a grid generalised to corpus metrics (MCC, F1 per seed on the resampled examples),
and the mean path it keeps exactly as it was."""

import json
from pathlib import Path

import numpy as np
import pytest

from samora.evaluation.metrics import f1_score, matthews_corrcoef
from samora.evaluation.statistics import CorpusMetric, bootstrap_grid, paired_test

GOLDEN = Path(__file__).parent / "goldens" / "bootstrap_mean_path.json"
REFERENCE = {"mcc": matthews_corrcoef, "f1": f1_score}


def mean_path_inputs():
    """The fixed input of the golden file (written by the code before corpus metrics existed)."""
    rng = np.random.default_rng(2027)
    values = {"a": (rng.random((3, 40)) < 0.6).astype(float), "b": (rng.random((3, 25)) < 0.4).astype(float)}
    other = {t: (rng.random(v.shape) < 0.5).astype(float) for t, v in values.items()}
    base = {t: (rng.random((1, v.shape[1])) < 0.3).astype(float) for t, v in values.items()}
    return values, other, base


def test_the_mean_path_reproduces_the_earlier_outputs_exactly():
    """Same draws in the same order (seed rows, then each task's example rows), the paired test on
    the per-example difference: every number, p-values included, equals what the code gave before."""
    values, other, base = mean_path_inputs()
    grid = bootstrap_grid(values, samples=300, seed=7)
    now = {
        "grid": {"tasks": grid["tasks"], "mean": grid["mean"], "replicates_head": grid["replicates"][:10].tolist()},
        "paired": paired_test(values, other, samples=300, seed=7),
        "paired_base": paired_test(values, base, samples=300, seed=7),
    }
    assert json.loads(json.dumps(now)) == json.loads(GOLDEN.read_text())


def labelled(n, seeds, seed=0, unparsed=0.0):
    """Gold labels (n,) and ``seeds`` rows of predictions that agree with them 70% of the time;
    a share ``unparsed`` of predictions is -1 (an answer the generate protocol could not parse)."""
    rng = np.random.default_rng(seed)
    golds = rng.integers(0, 2, n)
    preds = np.where(rng.random((seeds, n)) < 0.7, golds, 1 - golds)
    return golds, np.where(rng.random((seeds, n)) < unparsed, -1, preds)


def replicate_loop(metric, golds, preds, samples, seed, reference_preds=None):
    """Replicate by replicate with the plain metric functions: the same draws as bootstrap_grid,
    mean over the drawn seeds of metric(seed's predictions on the drawn examples) (minus the
    reference row's, paired seed by seed or with its single row)."""
    rng = np.random.default_rng(seed)
    seeds, n = preds.shape
    seed_rows = rng.integers(0, seeds, size=(samples, seeds))
    example_rows = rng.integers(0, n, size=(samples, n))
    function = REFERENCE[metric]
    replicates = []
    for drawn_seeds, rows in zip(seed_rows, example_rows):
        values = []
        for s in drawn_seeds:
            value = function(golds[rows], preds[s][rows])
            if reference_preds is not None:
                value -= function(golds[rows], reference_preds[s % len(reference_preds)][rows])
            values.append(value)
        replicates.append(np.mean(values))
    return np.array(replicates)


@pytest.mark.parametrize("metric", ["mcc", "f1"])
def test_corpus_metric_replicates_equal_a_plain_loop_over_the_metric_functions(metric):
    golds, preds = labelled(37, 3, seed=1, unparsed=0.1)
    grid = bootstrap_grid({"task": CorpusMetric(metric, golds, preds)}, samples=60, seed=5)
    expected = replicate_loop(metric, golds, preds, 60, 5)
    np.testing.assert_allclose(grid["replicates"], expected, rtol=1e-12, atol=1e-12)
    point = np.mean([REFERENCE[metric](golds, row) for row in preds])
    assert grid["tasks"]["task"]["value"] == pytest.approx(point, rel=1e-12)
    assert grid["mean"]["value"] == pytest.approx(point, rel=1e-12)
    assert grid["tasks"]["task"]["ci95"][0] < point < grid["tasks"]["task"]["ci95"][1]


def test_counting_in_chunks_gives_the_same_replicates():
    golds, preds = labelled(50, 2, seed=2)
    whole = CorpusMetric("mcc", golds, preds)
    chunked = CorpusMetric("mcc", golds, preds)
    chunked.CHUNK = 7 * 50  # seven replicates at a time
    rows = np.random.default_rng(0).integers(0, 50, size=(40, 50))
    np.testing.assert_array_equal(whole.on_examples(rows), chunked.on_examples(rows))


@pytest.mark.parametrize("metric", ["mcc", "f1"])
def test_paired_corpus_test_bootstraps_the_difference_of_the_two_metrics(metric):
    golds, preds = labelled(41, 3, seed=3)
    _, other = labelled(41, 3, seed=4)
    other = np.where(np.random.default_rng(5).random(other.shape) < 0.5, golds, other)  # a better row
    _, base = labelled(41, 1, seed=6)
    for reference in (other, base):
        test = paired_test(
            {"t": CorpusMetric(metric, golds, preds)},
            {"t": CorpusMetric(metric, golds, reference)},
            samples=50,
            seed=9,
        )
        expected = replicate_loop(metric, golds, preds, 50, 9, reference_preds=reference)
        value = np.mean(
            [
                REFERENCE[metric](golds, row) - REFERENCE[metric](golds, reference[s % len(reference)])
                for s, row in enumerate(preds)
            ]
        )
        assert test["value"] == pytest.approx(value, rel=1e-12)
        extreme = np.sum(np.abs(expected - value) >= abs(value) - 1e-12)
        assert test["p_value"] == pytest.approx((1 + extreme) / 51)
        assert test["ci95"] == pytest.approx(list(np.percentile(expected, [2.5, 97.5])), rel=1e-9)


def test_a_corpus_task_and_a_mean_task_in_one_grid():
    """The mean task drawn first keeps exactly its own-grid interval; the mean row averages the
    task values (MCC and accuracy each in its own unit)."""
    rng = np.random.default_rng(8)
    correct = (rng.random((2, 30)) < 0.6).astype(float)
    golds, preds = labelled(20, 2, seed=9)
    mixed = bootstrap_grid({"acc_task": correct, "mcc_task": CorpusMetric("mcc", golds, preds)}, samples=200)
    alone = bootstrap_grid({"acc_task": correct}, samples=200)
    assert mixed["tasks"]["acc_task"] == alone["tasks"]["acc_task"]
    mcc = np.mean([matthews_corrcoef(golds, row) for row in preds])
    assert mixed["mean"]["value"] == pytest.approx((correct.mean() + mcc) / 2)


def test_a_corpus_metric_refuses_what_it_cannot_score():
    with pytest.raises(ValueError, match="unknown corpus metric 'auc'; known: mcc, f1"):
        CorpusMetric("auc", [0, 1], [[0, 1]])
    with pytest.raises(ValueError, match=r"mcc: expected gold labels \(n,\) and predictions \(seeds, n\)"):
        CorpusMetric("mcc", [0, 1, 1], [[0, 1]])
    with pytest.raises(ValueError, match=r"t: cannot pair two different statistics \(mcc - f1\)"):
        paired_test({"t": CorpusMetric("mcc", [0, 1], [[0, 1]])}, {"t": CorpusMetric("f1", [0, 1], [[0, 1]])})
    with pytest.raises(ValueError, match=r"cannot pair two different statistics \(mcc - MeanOfExamples\)"):
        paired_test({"t": CorpusMetric("mcc", [0, 1], [[0, 1]])}, {"t": np.ones((1, 2))})
    with pytest.raises(ValueError, match="cannot pair"):
        paired_test({"t": CorpusMetric("mcc", [0, 1], [[0, 1]] * 3)}, {"t": CorpusMetric("mcc", [0, 1], [[0, 1]] * 2)})
