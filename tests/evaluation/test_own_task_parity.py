"""Own task YAMLs scored by lm-eval 0.4 and by samora agree example by example (acc for multiple_choice,
exact_match for generate_until), with and without the chat template.

Live: lm-eval's HF backend and samora score the same tiny model. Goldens: lm-eval's records on
SmolLM2-135M-Instruct (goldens/own_tasks_smollm2.json, written by benchmarks/own_task_goldens.py),
against which samora's rendering (no model) and its scores (``real_model``) are checked.
"""

import json
from pathlib import Path

import pytest

from samora.data.chat import ChatFormat
from samora.evaluation.task_results import EvaluationOptions, score_examples
from tests.evaluation.own_task_parity import SYSTEM_PROMPT, TASK_NAMES, lm_eval_records, samora_examples

pytest.importorskip("lm_eval")

GOLDENS = Path(__file__).with_name("goldens") / "own_tasks_smollm2.json"
MODES = {"plain": False, "chat": True}


def samora_fields(model, tokenizer, chat: bool) -> dict:
    """task -> samora's scored entry fields for the parity tasks."""
    options = EvaluationOptions(
        chat_template=chat,
        system_prompt=SYSTEM_PROMPT if chat else None,
        batch_size=4,
        progress=False,
        bootstrap_samples=10,
    )
    return {
        name: score_examples(model, tokenizer, task, examples, None, options, None)
        for name, (task, examples) in samora_examples().items()
    }


def samora_requests(tokenizer, chat: bool) -> dict[str, list[list[tuple[str, str]]]]:
    """task -> per document, the (context, continuation) pairs samora scores or generates from."""
    format_ = ChatFormat(tokenizer, SYSTEM_PROMPT) if chat else None
    requests = {}
    for name, (task, examples) in samora_examples().items():
        rows = []
        for prompt, choices in zip(examples["prompt"], examples["choices"]):
            if task.output_type == "generate_until":
                rows.append([(format_.prompt(prompt) if format_ else prompt, "")])
            elif format_:
                rows.append([format_.loglik_request(prompt, choice, task.target_delimiter) for choice in choices])
            else:
                rows.append([(prompt, choice) for choice in choices])
        requests[name] = rows
    return requests


def assert_same_requests(requests: list[list[tuple[str, str]]], records: list[dict]) -> None:
    """samora's contexts are lm-eval's (lm-eval moves a context's trailing whitespace into the
    continuation only when it tokenises, so the texts are compared joined and without it)."""
    for pairs, record in zip(requests, records, strict=True):
        theirs = list(zip(record["contexts"], record["continuations"] or [""]))
        assert [(c.rstrip(), c + d) for c, d in pairs] == [(c.rstrip(), c + d) for c, d in theirs], record["id"]


def assert_same_results(fields: dict, records: dict) -> None:
    """Per document: the same log-likelihoods and acc / acc_norm, the same generated text, filtered
    answers and exact_match per filter."""
    mc, gen = (fields[name]["samples"] for name in TASK_NAMES)
    for sample, record in zip(mc, records["samora_parity_mc"], strict=True):
        assert sample["id"] == record["id"]
        assert sample["scores"] == pytest.approx(record["loglik"], abs=2e-4), record["id"]
        assert (sample["pred"] == sample["gold"], sample["pred_norm"] == sample["gold"]) == (
            record["acc"] == 1.0,
            record["acc_norm"] == 1.0,
        ), record["id"]
    for sample, record in zip(gen, records["samora_parity_gen"], strict=True):
        assert (sample["id"], sample["prompt"]) == (record["id"], record["contexts"][0])
        assert sample["response"] == record["response"], record["id"]
        assert sample["filtered"] == record["filtered"], record["id"]
        assert {f: sample["metrics"][f"exact_match,{f}"] for f in record["filtered"]} == record["exact_match"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoTokenizer, LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("mode", MODES)
def test_samora_and_lm_eval_agree_per_example_on_a_tiny_model(tiny, mode):
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = tiny
    records = lm_eval_records(HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4), chat=MODES[mode])
    requests = samora_requests(tokenizer, MODES[mode])
    for name in TASK_NAMES:
        assert_same_requests(requests[name], records[name])
    assert_same_results(samora_fields(model, tokenizer, MODES[mode]), records)


def test_goldens_hold_lm_eval_records_of_both_tasks_and_modes():
    goldens = json.loads(GOLDENS.read_text(encoding="utf-8"))
    assert goldens["lm_eval"] == "0.4.13" and set(goldens["runs"]) == set(MODES)
    for records in goldens["runs"].values():
        assert [len(records[name]) for name in TASK_NAMES] == [10, 10]
        assert 0 < sum(r["acc"] for r in records["samora_parity_mc"]) < 10
    # SmolLM2 answers some questions right: exact_match is not trivially 0 in either mode
    for records in goldens["runs"].values():
        assert sum(r["exact_match"]["last-word"] for r in records["samora_parity_gen"]) > 0


@pytest.mark.parametrize("mode", MODES)
def test_samora_renders_the_requests_lm_eval_scored(smollm2_tokenizer, mode):
    runs = json.loads(GOLDENS.read_text(encoding="utf-8"))["runs"][mode]
    requests = samora_requests(smollm2_tokenizer, MODES[mode])
    for name in TASK_NAMES:
        assert_same_requests(requests[name], runs[name])


@pytest.mark.real_model
@pytest.mark.parametrize("mode", MODES)
def test_samora_matches_lm_eval_goldens_on_smollm2(mode):
    from samora.models.smollm2 import load_smollm2

    model, tokenizer = load_smollm2()
    runs = json.loads(GOLDENS.read_text(encoding="utf-8"))["runs"][mode]
    assert_same_results(samora_fields(model, tokenizer, MODES[mode]), runs)
