"""Classification metrics, written out so that their definitions are visible.

Predictions are choice indices; ``-1`` marks an output the generate protocol could not parse. It
counts as wrong for accuracy, as a prediction of a class of its own for MCC (exactly what
scikit-learn does with a label outside the gold set), and as "not positive" for F1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class NonFiniteScores(ValueError):
    """A model's choice scores hold NaN or infinity: any argmax over them would be meaningless."""


def require_finite_scores(scores: Sequence[float], what: str = "scores") -> None:
    """Refuse NaN/inf choice scores (log-likelihoods) before they become predictions.

    ``argmax`` over NaN picks the first choice, so a diverged adapter would score, e.g., BoolQ
    accuracy 1.00 when the first choice is usually right. ``what`` names the scores in the message
    (``"boolq log-likelihoods"``).
    """
    values = np.asarray(scores, dtype=np.float64)
    bad = int(np.sum(~np.isfinite(values)))
    if bad:
        raise NonFiniteScores(
            f"{bad} of {values.size} {what} are NaN or infinite: the model's outputs are not finite (a diverged "
            "or damaged adapter, or an overflow in this dtype); no metric can be computed from them. Check the "
            "adapter (retrain with a lower learning rate) or evaluate in float32"
        )


def accuracy(golds: Sequence[int], preds: Sequence[int]) -> float:
    """Fraction of predictions equal to the gold index."""
    golds, preds = _arrays(golds, preds)
    return float(np.mean(golds == preds))


def matthews_corrcoef(golds: Sequence[int], preds: Sequence[int]) -> float:
    """Matthews correlation (Gorodkin's multiclass form; the binary phi coefficient for 2 classes).

    With c correct predictions out of s, p_k predictions and t_k gold labels of class k::

        MCC = (c * s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) * (s^2 - sum_k t_k^2))

    and 0 when a denominator factor is 0 (constant predictions or gold), as scikit-learn returns.
    """
    golds, preds = _arrays(golds, preds)
    classes = np.union1d(golds, preds)
    t = np.array([np.sum(golds == k) for k in classes], dtype=np.float64)
    p = np.array([np.sum(preds == k) for k in classes], dtype=np.float64)
    s, c = float(len(golds)), float(np.sum(golds == preds))
    denominator = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return 0.0 if denominator == 0 else float((c * s - p @ t) / denominator)


def f1_score(golds: Sequence[int], preds: Sequence[int], positive: int = 1) -> float:
    """Binary F1 of the ``positive`` class: 2 TP / (2 TP + FP + FN) (0 when nothing is positive).

    GLUE's MRPC and QQP use label 1 (paraphrase / duplicate) as the positive class.
    """
    golds, preds = _arrays(golds, preds)
    tp = np.sum((preds == positive) & (golds == positive))
    fp = np.sum((preds == positive) & (golds != positive))
    fn = np.sum((preds != positive) & (golds == positive))
    return 0.0 if tp + fp + fn == 0 else float(2 * tp / (2 * tp + fp + fn))


METRICS = {"acc": accuracy, "mcc": matthews_corrcoef, "f1": f1_score}


def compute_metrics(names: Sequence[str], golds: Sequence[int], preds: Sequence[int]) -> dict[str, float]:
    """``{name: value}`` for metric names from :data:`METRICS`."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}; known: {', '.join(METRICS)}.")
    return {name: METRICS[name](golds, preds) for name in names}


def metric_function(name: str):
    """The function behind a reported metric name: ``acc_norm`` is accuracy (over the
    length-normalised predictions), the others come from :data:`METRICS`."""
    return accuracy if name == "acc_norm" else METRICS[name]


def _arrays(golds: Sequence[int], preds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    golds, preds = np.asarray(golds, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    if golds.shape != preds.shape or golds.ndim != 1 or len(golds) == 0:
        raise ValueError(
            f"Expected two equally long, non-empty 1-d label lists; got shapes {golds.shape} and {preds.shape}."
        )
    return golds, preds
