import math

import numpy as np
import pytest

from samora.evaluation import accuracy, compute_metrics, f1_score, matthews_corrcoef


def reference_mcc(golds, preds):
    """MCC as the correlation of one-hot label matrices (Gorodkin 2004), computed independently."""
    classes = sorted(set(golds) | set(preds))
    x = np.array([[g == k for k in classes] for g in golds], dtype=float)
    y = np.array([[p == k for k in classes] for p in preds], dtype=float)
    x -= x.mean(0)
    y -= y.mean(0)
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def test_accuracy():
    assert accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == 0.75
    assert accuracy([0, 1], [-1, 1]) == 0.5  # unparsed counts as wrong


def test_mcc_known_values():
    # scikit-learn's documented example (labels +1/-1 mapped to 1/0): -0.333...
    assert matthews_corrcoef([1, 1, 1, 0], [1, 0, 1, 1]) == pytest.approx(-1 / 3)
    assert matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == 1.0
    assert matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == -1.0
    assert matthews_corrcoef([0, 1, 1, 0], [1, 1, 1, 1]) == 0.0  # constant predictions
    # TP 6, TN 3, FP 1, FN 2: (18 - 2) / sqrt(7 * 8 * 4 * 5)
    golds = [1] * 8 + [0] * 4
    preds = [1] * 6 + [0] * 2 + [0] * 3 + [1]
    assert matthews_corrcoef(golds, preds) == pytest.approx(16 / np.sqrt(7 * 8 * 4 * 5))


def test_mcc_matches_the_binary_phi_coefficient_and_the_multiclass_reference():
    rng = np.random.default_rng(0)
    golds, preds = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert matthews_corrcoef(golds, preds) == pytest.approx(np.corrcoef(golds, preds)[0, 1])
    golds, preds = rng.integers(0, 3, 300), rng.integers(-1, 3, 300)  # with unparsed (-1)
    assert matthews_corrcoef(golds, preds) == pytest.approx(reference_mcc(golds, preds))


def test_f1_known_values():
    assert f1_score([0, 1, 1, 0, 1], [0, 1, 0, 0, 1]) == pytest.approx(0.8)  # TP 2, FN 1
    # scikit-learn's documented example: per-class F1 is [0.8, 0, 0]
    golds, preds = [0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1]
    assert f1_score(golds, preds, positive=0) == pytest.approx(0.8)
    assert f1_score(golds, preds, positive=1) == 0.0
    assert f1_score([1, 1, 0], [-1, 1, 0]) == pytest.approx(2 / 3)  # unparsed is a miss
    assert f1_score([0, 0], [0, 0]) == 0.0


def test_compute_metrics_and_errors():
    assert compute_metrics(["acc", "f1"], [1, 0], [1, 1]) == {"acc": 0.5, "f1": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="Unknown metric"):
        compute_metrics(["bleu"], [1], [1])
    with pytest.raises(ValueError, match="equally long, non-empty"):
        accuracy([1, 0], [1])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_refused_before_an_argmax(bad):
    from samora.evaluation.metrics import NonFiniteScores, require_finite_scores

    require_finite_scores([-1.5, -0.2, -3.0])  # finite: accepted
    with pytest.raises(NonFiniteScores, match=r"1 of 3 boolq log-likelihoods are NaN or infinite"):
        require_finite_scores([-1.5, bad, -3.0], "boolq log-likelihoods")
