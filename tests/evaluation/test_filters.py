"""lm-eval's filter_list applied to generated responses (lm-eval's own filter classes)."""

import sys

import pytest

from samora.evaluation.filters import FilterError, apply_filters, filter_names, filter_responses

GSM8K_LIKE = [
    {
        "name": "strict-match",
        "filter": [{"function": "regex", "regex_pattern": r"#### (\-?[0-9\.\,]+)"}, {"function": "take_first"}],
    },
    {
        "name": "flexible-extract",
        "filter": [
            {"function": "regex", "group_select": -1, "regex_pattern": r"(-?[$0-9.,]{2,})|(-?[0-9]+)"},
            {"function": "take_first"},
        ],
    },
]


def test_no_filter_list_scores_the_whole_response():
    assert apply_filters([], " 42 apples\n") == {"none": " 42 apples\n"}
    assert filter_names([]) == ["none"]


def test_regex_pipelines_extract_as_lm_eval_does():
    pytest.importorskip("lm_eval")
    answers = filter_responses(GSM8K_LIKE, ["So 3 + 4 = 7\n#### 7", "It is 12 or 15", "no number"])
    assert answers[0] == {"strict-match": "7", "flexible-extract": "7"}
    # group_select -1: the last match; of a match with groups, the first non-empty group
    assert answers[1] == {"strict-match": "[invalid]", "flexible-extract": "15"}
    assert answers[2] == {"strict-match": "[invalid]", "flexible-extract": "[invalid]"}
    assert filter_names(GSM8K_LIKE) == ["strict-match", "flexible-extract"]


def test_steps_run_in_order_and_a_pipeline_without_take_first_gives_its_answer():
    pytest.importorskip("lm_eval")
    pipeline = [
        {
            "name": "label",
            "filter": [
                {"function": "lowercase"},
                {"function": "regex", "regex_pattern": r"(positive|negative)", "fallback": "unknown"},
            ],
        }
    ]
    assert apply_filters(pipeline, "The review is POSITIVE.") == {"label": "positive"}
    assert apply_filters(pipeline, "Neutral") == {"label": "unknown"}


def test_malformed_filter_lists_are_refused_by_entry():
    pytest.importorskip("lm_eval")
    with pytest.raises(FilterError, match="filter_list entry 0 is .*expected \\{name"):
        apply_filters([{"filter": [{"function": "take_first"}]}], "x")
    with pytest.raises(FilterError, match="entry 'strict' has filter 'regex'"):
        apply_filters([{"name": "strict", "filter": "regex"}], "x")
    with pytest.raises(FilterError, match="entry 'strict': Unknown filter 'regexp'. Did you mean: regex"):
        apply_filters([{"name": "strict", "filter": [{"function": "regexp"}]}], "x")


def test_a_filter_list_without_lm_eval_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval.filters", None)  # import lm_eval.filters raises ImportError
    with pytest.raises(
        FilterError, match=r"filter_list \(strict-match, flexible-extract\).*pip install samora\[lm-eval\]"
    ):
        apply_filters(GSM8K_LIKE, "#### 7")
    assert apply_filters([], "#### 7") == {"none": "#### 7"}  # the core path needs no lm-eval
