"""The OpenAI response bodies ``samora serve`` writes: completions, chat completions, their
streamed chunks (server-sent events ending in ``data: [DONE]``), the model list and errors.

Each response carries a ``samora`` field beside OpenAI's: the task that answered (and, when
``--default-task`` took an unknown one, a note saying so; see :meth:`samora.serve.requests.Route.metadata`)
and ``batch``, the number of requests decoded in the same batch.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

Kind = Literal["completion", "chat"]


def completion_id(kind: Kind) -> str:
    return f"{'cmpl' if kind == 'completion' else 'chatcmpl'}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, choices: list[dict]) -> dict[str, int]:
    completion = sum(choice["completion_tokens"] for choice in choices)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


def full_response(kind: Kind, model: str, choices: list[dict], prompt_tokens: int, metadata: dict) -> dict:
    """The non-streamed body: every choice's text (a message for chat), finish reason and the usage."""
    entries = []
    for index, choice in enumerate(choices):
        entry: dict[str, Any] = {"index": index, "finish_reason": choice["finish_reason"], "logprobs": None}
        if kind == "completion":
            entry["text"] = choice["text"]
        else:
            entry["message"] = {"role": "assistant", "content": choice["text"]}
        entries.append(entry)
    return {
        "id": completion_id(kind),
        "object": "text_completion" if kind == "completion" else "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": entries,
        "usage": usage(prompt_tokens, choices),
        "samora": metadata,
    }


async def stream_events(
    kind: Kind,
    model: str,
    messages: AsyncIterator[dict],
    n: int,
    prompt_tokens: int,
    metadata: dict,
    include_usage: bool,
) -> AsyncIterator[str]:
    """The streamed body as server-sent events, from the worker's messages as they come: (chat: the
    assistant role of each choice first) each choice's new text, its finish reason when it ends, the
    usage last when ``stream_options.include_usage`` asks for it, then ``data: [DONE]``. An error
    after the stream started is sent as an event with OpenAI's error body."""
    header: dict[str, Any] = {}
    finished: dict[int, dict] = {}
    try:
        async for message in messages:
            if not header:
                header.update(_chunk_header(kind, model, {**metadata, "batch": message["batch"]}))
                if kind == "chat":
                    for index in range(n):
                        yield _chunk(header, kind, index, "", None, role=True)
            for piece in message["pieces"]:
                if piece["text"]:
                    yield _chunk(header, kind, piece["choice"], piece["text"], None)
                if piece["finished"]:
                    finished[piece["choice"]] = piece["finished"]
                    yield _chunk(header, kind, piece["choice"], None, piece["finished"]["finish_reason"])
    except Exception as err:  # the HTTP status is sent already: the error goes into the stream
        yield event(error_body(getattr(err, "status_code", 500), str(getattr(err, "detail", "generation failed"))))
        return
    if include_usage:
        yield event({**header, "choices": [], "usage": usage(prompt_tokens, list(finished.values()))})
    yield "data: [DONE]\n\n"


def _chunk_header(kind: Kind, model: str, metadata: dict) -> dict:
    return {
        "id": completion_id(kind),
        "object": "text_completion" if kind == "completion" else "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "samora": metadata,
    }


def _chunk(header: dict, kind: Kind, index: int, text: str | None, finish_reason: str | None, role=False) -> str:
    """One event: new text of choice ``index`` (completion: ``text``; chat: a ``delta``) or its end."""
    if kind == "completion":
        choice = {"index": index, "text": text or "", "finish_reason": finish_reason, "logprobs": None}
    else:
        delta = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        choice = {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    return event({**header, "choices": [choice]})


def event(body: dict) -> str:
    return f"data: {json.dumps(body)}\n\n"


def model_list(model_ids: list[str], owner: str) -> dict:
    """``GET /v1/models``: every ``model`` value a request may send."""
    created = int(time.time())
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": created, "owned_by": owner} for name in model_ids],
    }


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}


def error_body(status: int, message: str, param: str | None = None) -> dict:
    """OpenAI's error body, which its client reads into the raised exception's message."""
    return {
        "error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "param": param, "code": None}
    }
