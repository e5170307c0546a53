"""Per-example text metrics: lm-eval's exact_match option for option, SQuAD F1, ROUGE-L, label accuracy."""

import itertools

import pytest

from samora.evaluation.text_metrics import (
    TEXT_METRICS,
    exact_match,
    label_accuracy,
    register_text_metric,
    rouge_l,
    score_text,
    text_metric,
    token_f1,
)

PAIRS = [
    ("Paris", "Paris"),
    ("paris", "Paris"),
    ("Paris.", "Paris"),
    (" Paris", "Paris"),
    ("The answer is 42", "the answer is 17"),
    ("answer: 3,000!", "Answer 3000"),
    ("$5.00 dollars", "5.00"),
    ("Paris is the capital", "Paris"),
    ("", ""),
]
REGEXES = [None, ["^the answer is "], ["(?i)answer:? ", r"\$"]]


def test_exact_match_equals_lm_eval_for_every_option_combination():
    lm_eval_metrics = pytest.importorskip("lm_eval.api.metrics")
    for (prediction, gold), case, punctuation, numbers, regexes in itertools.product(
        PAIRS, *[(False, True)] * 3, REGEXES
    ):
        options = dict(
            ignore_case=case, ignore_punctuation=punctuation, ignore_numbers=numbers, regexes_to_ignore=regexes
        )
        expected = lm_eval_metrics.exact_match_hf_evaluate(predictions=[prediction], references=[gold], **options)
        assert exact_match(prediction, gold, **options) == expected["exact_match"], (prediction, gold, options)


def test_exact_match_keeps_whitespace_and_case_by_default():
    assert exact_match("Paris", "Paris") == 1.0
    assert exact_match(" Paris", "Paris") == 0.0
    assert exact_match("paris", "Paris") == 0.0
    assert exact_match("Paris!", "paris", ignore_case=True, ignore_punctuation=True) == 1.0


def test_token_f1_is_squads():
    # lm-eval's MLQA task carries SQuAD's evaluation script (English: the same articles and, for
    # ASCII text, the same punctuation)
    mlqa = pytest.importorskip("lm_eval.tasks.mlqa.utils")
    cases = [
        ("the cat sat on the mat", "a cat sat"),
        ("Cat, sat!", "the cat sat"),
        ("dog", "cat"),
        ("New York City", "new york"),
        ("a b b c", "b b b"),
    ]
    for prediction, gold in cases:
        assert token_f1(prediction, gold) == pytest.approx(mlqa.f1_score(prediction, gold, "en")), (prediction, gold)
    # by hand: normalised "cat sat on mat" vs "cat sat": P = 2/4, R = 1, F1 = 2/3
    assert token_f1("the cat sat on the mat", "a cat sat") == pytest.approx(2 / 3)
    # the official script: two empty answers agree, one empty answer scores 0
    assert token_f1("the", "") == 1.0
    assert token_f1("", "cat") == 0.0


def test_rouge_l_is_the_lcs_f_measure():
    # LCS of "the cat sat" and "the cat sat on the mat" is 3 tokens: P = 3/3, R = 3/6
    assert rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert rouge_l("cats sitting", "cat sits", use_stemmer=True) == 1.0
    assert rouge_l("cats sitting", "cat sits") == 0.0


def test_label_accuracy_strips_and_optionally_ignores_case():
    assert label_accuracy(" positive\n", "positive") == 1.0
    assert label_accuracy("Positive", "positive") == 0.0
    assert label_accuracy("Positive", "positive", ignore_case=True) == 1.0


def test_score_text_reads_a_metric_list_entry():
    entry = {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True, "ignore_case": True}
    assert score_text(entry, "PARIS", "paris") == 1.0
    assert score_text({"metric": "exact_match"}, "PARIS", "paris") == 0.0
    with pytest.raises(TypeError, match="ignore_cas"):
        score_text({"metric": "exact_match", "ignore_cas": True}, "a", "a")


def test_users_register_their_own_metric_and_unknown_names_are_refused():
    @register_text_metric("test_contains")
    def contains(prediction: str, gold: str) -> float:
        return float(gold in prediction)

    try:
        assert score_text({"metric": "test_contains"}, "it is Paris", "Paris") == 1.0
        with pytest.raises(ValueError, match="already registered"):
            register_text_metric("test_contains")(lambda prediction, gold: 0.0)
    finally:
        TEXT_METRICS.pop("test_contains")
    with pytest.raises(ValueError, match="Unknown text metric 'bleu'.*exact_match"):
        text_metric("bleu")
