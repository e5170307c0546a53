"""``samora serve`` on a tiny SAMoRA adapter, driven by the official ``openai`` client over 127.0.0.1:
completions, chat, streaming, the task from ``model``, bad requests, the API key, 32 concurrent
requests over 4 tasks, and a graceful shutdown (the last test)."""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import torch

from tests.serve.conftest import API_KEY, LIMITS, SERVED_TASKS, http, status_of

PROMPTS = ["The cat sat on the", "Question: is water wet? Answer:", "1, 2, 3,", "Once upon a time"]


@pytest.fixture(scope="module")
def client(server):
    base_url, _ = server
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def generate_alone(model, tokenizer, prompt_ids: list[int], task: str, max_tokens: int) -> str:
    """The reference answer: the prompt decoded by itself with greedy ``model.generate``."""
    input_ids = torch.tensor([prompt_ids])
    output = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        task_ids=[task],
        max_new_tokens=max_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)


def expected_completion(reference_model, tokenizer, prompt: str, task: str, max_tokens: int) -> str:
    return generate_alone(reference_model, tokenizer, tokenizer(prompt)["input_ids"], task, max_tokens)


def test_models_lists_every_task_under_both_names(client, adapter_dir):
    ids = {model.id for model in client.models.list()}
    assert set(SERVED_TASKS) <= ids
    assert {f"{adapter_dir.name}:{task}" for task in SERVED_TASKS} <= ids


def test_a_completion_is_the_greedy_generate_of_its_task(client, reference_model, smollm2_tokenizer):
    response = client.completions.create(model="piqa", prompt=PROMPTS[0], max_tokens=6, temperature=0)
    expected = expected_completion(reference_model, smollm2_tokenizer, PROMPTS[0], "piqa", 6)
    assert response.choices[0].text == expected
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 6
    assert response.usage.prompt_tokens == len(smollm2_tokenizer(PROMPTS[0])["input_ids"])
    assert response.model_extra["samora"] == {"task": "piqa", "task_id": 1, "requested": "piqa", "batch": 1}


def test_chat_uses_the_chat_template_and_the_adapter_prefixed_task(
    client, reference_model, smollm2_tokenizer, adapter_dir
):
    messages = [{"role": "user", "content": "Is the sky blue?"}]
    response = client.chat.completions.create(
        model=f"{adapter_dir.name}:boolq", messages=messages, max_tokens=5, temperature=0
    )
    text = smollm2_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = smollm2_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert response.choices[0].message.content == generate_alone(
        reference_model, smollm2_tokenizer, prompt_ids, "boolq", 5
    )
    assert response.choices[0].message.role == "assistant"
    assert response.model_extra["samora"]["task"] == "boolq"


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_a_stream_carries_the_same_answer_and_ends_with_its_finish_reason(client, endpoint):
    if endpoint == "completions":
        options = dict(model="arc_easy", prompt=PROMPTS[1], max_tokens=5, temperature=0)
        whole = client.completions.create(**options).choices[0].text
        chunks = list(client.completions.create(stream=True, **options))
        streamed = "".join(chunk.choices[0].text for chunk in chunks)
    else:
        options = dict(model="arc_easy", messages=[{"role": "user", "content": "Hi"}], max_tokens=5, temperature=0)
        whole = client.chat.completions.create(**options).choices[0].message.content
        chunks = list(client.chat.completions.create(stream=True, **options))
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert streamed == whole
    assert chunks[-1].choices[0].finish_reason == "length"
    texts = [c.choices[0].text if endpoint == "completions" else c.choices[0].delta.content for c in chunks]
    assert len([text for text in texts if text]) > 1  # token by token, not the whole answer at once


def test_a_seeded_sampled_request_reproduces(client):
    options = dict(model="boolq", prompt=PROMPTS[2], max_tokens=6, temperature=1.0, n=2, seed=7)
    first, again = (client.completions.create(**options) for _ in range(2))
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert len(first.choices) == 2


def test_an_unknown_task_is_refused_with_the_served_tasks(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="mnli", prompt="x", max_tokens=2)
    assert refused.value.status_code == 400
    assert all(task in str(refused.value) for task in SERVED_TASKS)


BAD_BODIES = [
    (b'{"model": "boolq", "prompt": ', "not valid JSON"),
    (b'["boolq"]', "must be a JSON object"),
    (b'{"model": "boolq", "prompt": "hi", "max_tokens": "five"}', "max_tokens"),
    (b'{"model": "boolq", "prompt": 3}', "prompt"),
    (b'{"model": "boolq", "prompt": ""}', "prompt is empty"),
    (b'{"model": "boolq", "prompt": "hi", "temperature": -1}', "temperature"),
    (b'{"model": "boolq", "prompt": "hi", "max_tokens": 33}', f"limit of {LIMITS['max_tokens_limit']}"),
    (b'{"model": "boolq", "prompt": "' + b"word " * 80 + b'"}', f"at most {LIMITS['max_prompt_tokens']} prompt"),
]


@pytest.mark.parametrize("body,message", BAD_BODIES, ids=[message for _, message in BAD_BODIES])
def test_a_bad_request_gets_a_400_saying_what_is_wrong_and_the_server_stays_up(server, body, message):
    base_url, _ = server
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    status, answer = http(f"{base_url}/v1/completions", body, headers)
    assert status == 400, answer
    assert message in json.loads(answer)["error"]["message"]
    assert status_of(f"{base_url}/health") == 200


def test_chat_without_messages_is_a_400(client):
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="boolq", messages=[], max_tokens=2)


def test_the_api_key_guards_the_api_but_not_health(server):
    base_url, _ = server
    wrong = openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.completions.create(model="boolq", prompt="hi", max_tokens=2)
    assert status_of(f"{base_url}/health") == 200


def test_32_concurrent_requests_over_4_tasks_are_each_answered_as_alone(
    client, server, reference_model, smollm2_tokenizer
):
    jobs = [(PROMPTS[i % 4], SERVED_TASKS[(i // 4) % 4], 3 + i % 5) for i in range(32)]
    expected = {job: expected_completion(reference_model, smollm2_tokenizer, *job) for job in set(jobs)}

    def ask(job):
        prompt, task, max_tokens = job
        return client.completions.create(model=task, prompt=prompt, max_tokens=max_tokens, temperature=0)

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(ask, jobs))
    for job, answer in zip(jobs, answers):
        assert answer.choices[0].text == expected[job], job
        assert answer.model_extra["samora"]["task"] == job[1]
    assert len(set(expected.values())) > len(PROMPTS)  # the tasks answer apart: the check is not vacuous
    batches = [answer.model_extra["samora"]["batch"] for answer in answers]
    assert max(batches) > 1 and max(batches) <= 8, batches  # batched, up to --max-batch-size
    assert status_of(f"{server[0]}/health") == 200


def test_sigterm_stops_the_server_gracefully(server):
    """Last in this module: it stops the module's server."""
    _, process = server
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
