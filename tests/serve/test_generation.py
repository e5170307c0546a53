"""A batch of requests for different tasks answers each request as ``model.generate`` alone does,
greedily, for every method (samora.serve.generation)."""

from __future__ import annotations

import pytest
import torch

import samora
from samora.serve.generation import (
    Choice,
    GenerationRequest,
    Sampling,
    decoding_group,
    finish,
    generate_batch,
    stream_batch,
)
from samora.serve.streaming import RowText, held_back
from tests.helpers import tiny_llama_config
from tests.method_cases import METHOD_CASES

TASKS = ["t0", "t1", "t2", "t3"]
# prompts of different lengths (so the batch is left-padded), each asked under every task
PROMPTS = ["The cat sat", "Question: is the sky green? Answer:", "1 2 3 4 5 6 7", "Hello"]


def adapted_model(tokenizer, method: str):
    """A tiny Llama over the tokenizer's vocabulary with the method's first contract case, its adapter
    weights moved far from init so that the tasks route apart."""
    torch.manual_seed(0)
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    base = samora_base(tokenizer, special)
    config = next(iter(METHOD_CASES[method].values()))(TASKS)
    model = samora.get_model(base, config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator))
    return model.eval()


def samora_base(tokenizer, special):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(tiny_llama_config(len(tokenizer), **special)).eval()


def alone(model, tokenizer, request: GenerationRequest) -> list[int]:
    """The request decoded by itself: plain greedy ``model.generate`` on its prompt and task."""
    input_ids = torch.tensor([request.prompt_ids])
    output = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        task_ids=[request.task_id],
        max_new_tokens=request.sampling.max_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return output[0, input_ids.shape[1] :].tolist()


def mixed_requests(tokenizer) -> list[GenerationRequest]:
    """16 requests: every prompt under every task, with max_tokens from 3 to 6."""
    return [
        GenerationRequest(tuple(tokenizer(prompt)["input_ids"]), task, Sampling(max_tokens=3 + (task + index) % 4))
        for index, prompt in enumerate(PROMPTS)
        for task in range(len(TASKS))
    ]


@pytest.mark.parametrize("method", sorted(METHOD_CASES))
def test_a_mixed_task_batch_answers_each_request_as_generate_alone(smollm2_tokenizer, method):
    tokenizer = smollm2_tokenizer
    model = adapted_model(tokenizer, method)
    requests = mixed_requests(tokenizer)
    batched = generate_batch(model, tokenizer, requests)
    for request, choices in zip(requests, batched):
        expected = alone(model, tokenizer, request)
        expected_text = tokenizer.decode(expected, skip_special_tokens=True)
        assert [(c.text, c.completion_tokens) for c in choices] == [(expected_text, len(expected))], request
    if model.samora_adapter.config.uses_task:  # the tasks answer apart, so the comparison is not vacuous
        first_prompt = [choices[0].text for choices in batched[: len(TASKS)]]
        assert len(set(first_prompt)) > 1, first_prompt


@pytest.mark.parametrize("method", ["samora", "moore"])
def test_the_unseen_task_route_mixes_with_known_tasks_in_one_batch(smollm2_tokenizer, method):
    """--default-task unseen sends id -1 (SAMoRA's and MoORE's unseen-task route) into the batch."""
    model = adapted_model(smollm2_tokenizer, method)
    requests = [
        GenerationRequest(tuple(smollm2_tokenizer(prompt)["input_ids"]), task, Sampling(max_tokens=4))
        for prompt, task in zip(PROMPTS, [-1, 0, -1, 2])
    ]
    for request, choices in zip(requests, generate_batch(model, smollm2_tokenizer, requests)):
        expected = smollm2_tokenizer.decode(alone(model, smollm2_tokenizer, request), skip_special_tokens=True)
        assert choices[0].text == expected, request


def test_greedy_rows_share_one_group_and_seeded_requests_decode_alone():
    greedy = Sampling(max_tokens=5)
    assert decoding_group(0, greedy) == decoding_group(7, Sampling(max_tokens=9, stop=("x",)))
    sampled = Sampling(temperature=0.7, top_p=0.9)
    assert decoding_group(0, sampled) == decoding_group(3, sampled)
    seeded = Sampling(temperature=0.7, seed=5)
    assert decoding_group(0, seeded) != decoding_group(1, seeded)


def test_n_choices_of_a_seeded_request_reproduce(smollm2_tokenizer):
    model = adapted_model(smollm2_tokenizer, "samora")
    prompt = tuple(smollm2_tokenizer("The cat sat")["input_ids"])
    request = GenerationRequest(prompt, 1, Sampling(max_tokens=6, temperature=1.5, n=3, seed=11))
    first = generate_batch(model, smollm2_tokenizer, [request])
    other = GenerationRequest(prompt, 0, Sampling(max_tokens=4, temperature=1.5))
    again = generate_batch(model, smollm2_tokenizer, [other, request])
    assert len(first[0]) == 3 and first[0] == again[1]


class Letters:
    """A stand-in tokenizer: token i is the i-th lowercase letter; 0 is the end of sequence."""

    def decode(self, tokens, skip_special_tokens=True):
        return "".join(chr(ord("a") + token - 1) for token in tokens if token)


@pytest.mark.parametrize(
    "tokens,sampling,expected",
    [
        ([1, 2, 3, 4], Sampling(max_tokens=4), Choice("abcd", "length", 4)),
        ([1, 2, 3, 4], Sampling(max_tokens=2), Choice("ab", "length", 2)),
        ([1, 2, 0, 4], Sampling(max_tokens=4), Choice("ab", "stop", 2)),
        ([1, 2, 3, 4], Sampling(max_tokens=4, stop=("zz", "c")), Choice("ab", "stop", 3)),
        ([1, 2, 3, 4], Sampling(max_tokens=4, stop=("cd", "bc")), Choice("a", "stop", 3)),
    ],
)
def test_a_row_ends_at_eos_max_tokens_or_before_its_first_stop_string(tokens, sampling, expected):
    assert finish(Letters(), tokens, sampling, stops=[0]) == expected


def test_streamed_pieces_add_up_to_each_final_answer(smollm2_tokenizer):
    model = adapted_model(smollm2_tokenizer, "samora")
    requests = mixed_requests(smollm2_tokenizer)[:6]
    requests[1] = GenerationRequest(requests[1].prompt_ids, 1, Sampling(max_tokens=8, stop=("e",)))
    sent: dict[tuple[int, int], str] = {}
    finals = {}
    steps = list(stream_batch(model, smollm2_tokenizer, requests))
    for piece in (piece for pieces in steps for piece in pieces):
        sent[piece.request, piece.choice] = sent.get((piece.request, piece.choice), "") + piece.text
        if piece.finished:
            finals[piece.request, piece.choice] = piece.finished.text
    assert sent == finals and len(finals) == len(requests)
    assert len(steps) > 2  # one message per decoding step, then the finals


@pytest.mark.parametrize(
    "text,stop,held",
    [("abc", ["cd"], 1), ("abc", ["bcd"], 2), ("abc", ["x"], 0), ("ab\ufffd", [], 1), ("abc", ["abc"], 0)],
)
def test_a_row_holds_back_what_may_start_a_stop_string_or_a_character(text, stop, held):
    assert held_back(text, stop) == held


def test_a_row_sends_text_only_until_its_stop_string():
    row = RowText(Letters(), max_tokens=10, stop=["cd"], end_ids=[0])
    assert [row.add(token) for token in [1, 2, 3, 4, 5]] == ["a", "b", "", "", ""]
    assert row.closed and row.rest("ab") == ""
