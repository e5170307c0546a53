"""Per-example metrics of generated text: ``fn(prediction, gold, **options) -> float``, by name.

A ``generate_until`` task lists its metrics in lm-evaluation-harness's ``metric_list`` vocabulary
(``{"metric": "exact_match", "ignore_case": True}``); every key but ``metric`` and lm-eval's
bookkeeping (``aggregation``, ``higher_is_better``) is an option of the metric function. A task's
value of a metric is the mean of its per-example scores (lm-eval's ``mean`` aggregation).

Built in:

- ``exact_match`` (lm-eval 0.4's ``exact_match_hf_evaluate``, option for option): each string in
  ``regexes_to_ignore`` is removed (``re.sub(r, "", s)``, in order) from both texts, then
  ``ignore_case`` lower-cases them, ``ignore_punctuation`` deletes ``string.punctuation`` and
  ``ignore_numbers`` deletes ``string.digits``; the score is 1.0 when the two texts are then equal.
  Nothing else is normalised: leading/trailing whitespace counts (lm-eval does not strip either).
- ``f1``: SQuAD's token F1 (the official v1.1/v2.0 evaluation script). Both texts are normalised
  (lower case, punctuation removed, the articles a/an/the removed, whitespace collapsed) and split on
  whitespace; with c tokens in common (multiset intersection), precision P = c / |pred|, recall
  R = c / |gold| and F1 = 2PR / (P + R), 0 when c = 0; two empty token lists score 1.
- ``rouge_l``: the ROUGE-L F-measure of ``rouge_score`` (Google's reference implementation; longest
  common subsequence of the tokens, F = (1 + b^2) P R / (R + b^2 P) with b = 1), option
  ``use_stemmer`` (Porter stemming, default off).
- ``acc``: accuracy of an extracted label (after a filter took the label out of the text): 1.0 when
  ``prediction.strip() == gold.strip()`` (``ignore_case``: compared lower-cased).

Register another with :func:`register_text_metric`::

    @register_text_metric("contains")
    def contains(prediction: str, gold: str) -> float:
        return float(gold in prediction)
"""

from __future__ import annotations

import functools
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

TextMetric = Callable[..., float]

TEXT_METRICS: dict[str, TextMetric] = {}
#: metric_list keys that describe how lm-eval aggregates a metric, not how one example is scored
BOOKKEEPING_KEYS = ("metric", "aggregation", "higher_is_better")


def register_text_metric(name: str) -> Callable[[TextMetric], TextMetric]:
    """Decorator: make ``fn(prediction, gold, **options) -> float`` available as metric ``name``."""

    def register(fn: TextMetric) -> TextMetric:
        if name in TEXT_METRICS and TEXT_METRICS[name] is not fn:
            raise ValueError(
                f"A text metric named {name!r} is already registered ({TEXT_METRICS[name].__qualname__})."
            )
        TEXT_METRICS[name] = fn
        return fn

    return register


def text_metric(name: str) -> TextMetric:
    """The registered metric ``name``, or a ``ValueError`` listing the registered ones."""
    if name not in TEXT_METRICS:
        raise ValueError(
            f"Unknown text metric {name!r}; registered: {', '.join(sorted(TEXT_METRICS))} "
            "(add one with samora.evaluation.text_metrics.register_text_metric)."
        )
    return TEXT_METRICS[name]


def metric_options(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The options of one ``metric_list`` entry: every key but :data:`BOOKKEEPING_KEYS`."""
    return {key: value for key, value in entry.items() if key not in BOOKKEEPING_KEYS}


def score_text(entry: Mapping[str, Any], prediction: str, gold: str) -> float:
    """Score one example with a ``metric_list`` entry (``{"metric": name, **options}``)."""
    return float(text_metric(entry["metric"])(prediction, gold, **metric_options(entry)))


@register_text_metric("exact_match")
def exact_match(
    prediction: str,
    gold: str,
    *,
    regexes_to_ignore: list[str] | None = None,
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
) -> float:
    """1.0 when the texts are equal after lm-eval's optional removals (see the module docstring)."""
    for pattern in regexes_to_ignore or ():
        prediction, gold = re.sub(pattern, "", prediction), re.sub(pattern, "", gold)
    if ignore_case:
        prediction, gold = prediction.lower(), gold.lower()
    deleted = (string.punctuation if ignore_punctuation else "") + (string.digits if ignore_numbers else "")
    if deleted:
        table = str.maketrans("", "", deleted)
        prediction, gold = prediction.translate(table), gold.translate(table)
    return float(prediction == gold)


def squad_normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


@register_text_metric("f1")
def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 of the normalised texts (see the module docstring)."""
    predicted, expected = squad_normalise(prediction).split(), squad_normalise(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


@register_text_metric("rouge_l")
def rouge_l(prediction: str, gold: str, *, use_stemmer: bool = False) -> float:
    """ROUGE-L F-measure from ``rouge_score`` (target ``gold``, prediction ``prediction``)."""
    return float(_rouge_l_scorer(use_stemmer).score(gold, prediction)["rougeL"].fmeasure)


@functools.cache
def _rouge_l_scorer(use_stemmer: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)


@register_text_metric("acc")
def label_accuracy(prediction: str, gold: str, *, ignore_case: bool = False) -> float:
    """1.0 when the extracted label equals the gold label, surrounding whitespace aside."""
    prediction, gold = prediction.strip(), gold.strip()
    if ignore_case:
        prediction, gold = prediction.lower(), gold.lower()
    return float(prediction == gold)
