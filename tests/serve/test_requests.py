"""Routing a request's ``model`` to a task, ``--default-task``, and the request limits
(samora.serve.requests, samora.serve.loading), without a server."""

from __future__ import annotations

import pytest

import samora
from samora.config import ConfigError
from samora.serve.loading import check_default_task
from samora.serve.requests import (
    RequestError,
    Route,
    Served,
    generation_request,
    parse_body,
)

TASKS = ("boolq", "piqa")


def served(**changes) -> Served:
    values = dict(
        name="mix",
        method="samora",
        tasks=TASKS,
        needs_task=True,
        default_task=None,
        context_window=100,
        max_prompt_tokens=50,
        max_tokens_limit=40,
    )
    return Served(**(values | changes))


@pytest.mark.parametrize("model,task_id", [("boolq", 0), ("piqa", 1), ("mix:piqa", 1)])
def test_model_names_a_task_alone_or_after_the_adapter(model, task_id):
    route = served().route(model)
    assert (route.task, route.task_id, route.defaulted) == (TASKS[task_id], task_id, False)


@pytest.mark.parametrize("model", ["mnli", "mix", "other:boolq"])
def test_an_unknown_task_is_refused_naming_the_served_tasks(model):
    with pytest.raises(RequestError, match=r"serves the tasks \['boolq', 'piqa'\]") as refused:
        served().route(model)
    assert refused.value.param == "model"


def test_the_unseen_default_takes_unknown_tasks_and_says_so():
    route = served(default_task="unseen").route("mnli")
    assert (route.task_id, route.defaulted) == (-1, True)
    assert "unseen-task route (id -1)" in route.metadata()["default"]
    assert "default" not in served(default_task="unseen").route("piqa").metadata()


def test_a_task_default_takes_unknown_tasks():
    route = served(default_task="piqa").route("mnli")
    assert (route.task, route.task_id, route.metadata()["requested"]) == ("piqa", 1, "mnli")


def test_a_task_less_adapter_answers_to_its_own_name():
    assert served(tasks=(), needs_task=False, method="lora").route("mix") == Route(None, None, "mix")


@pytest.mark.parametrize("method", ["samora", "moore"])
def test_the_unseen_default_is_accepted_for_methods_with_an_unseen_route(method):
    check_default_task("unseen", TASKS, method, samora.METHODS[method][0])


@pytest.mark.parametrize(
    "method,default,message",
    [
        ("moelora", "unseen", "no unseen-task route"),
        ("lora", "unseen", "no unseen-task route"),
        ("samora", "x", "not a task"),
    ],
)
def test_a_default_the_adapter_cannot_route_is_refused_at_startup(method, default, message):
    with pytest.raises(ConfigError, match=message):
        check_default_task(default, TASKS, method, samora.METHODS[method][0])


def test_the_context_window_bounds_prompt_plus_max_tokens():
    body = parse_body({"model": "boolq", "prompt": "x", "max_tokens": 40}, "completion")
    with pytest.raises(RequestError, match="maximum context length is 100 tokens.*70 in the prompt, 40"):
        generation_request(body, list(range(70)), served().route("boolq"), served(max_prompt_tokens=100))


def test_chat_without_max_tokens_gets_what_is_left_of_the_window_within_the_limit():
    body = parse_body({"model": "boolq", "messages": [{"role": "user", "content": "hi"}]}, "chat")
    assert generation_request(body, list(range(10)), served().route("boolq"), served()).sampling.max_tokens == 40
    assert generation_request(body, list(range(45)), served().route("boolq"), served()).sampling.max_tokens == 40
    tight = served(context_window=50)
    assert generation_request(body, list(range(45)), tight.route("boolq"), tight).sampling.max_tokens == 5


def test_sampling_follows_the_body():
    body = parse_body(
        {"model": "piqa", "prompt": "x", "max_tokens": 3, "temperature": 0.5, "top_p": 0.9, "n": 2, "stop": "\n"},
        "completion",
    )
    request = generation_request(body, [5, 6], served().route("piqa"), served())
    assert (request.task_id, request.prompt_ids) == (1, (5, 6))
    sampling = request.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p, sampling.n, sampling.stop) == (
        3,
        0.5,
        0.9,
        2,
        ("\n",),
    )
