"""The LitServe server behind ``samora serve``: OpenAI's endpoints over mixed-task dynamic batches.

Why a spec of our own rather than LitServe's ``OpenAISpec``: that spec serves only
``/v1/chat/completions`` (no ``/v1/completions`` or ``/v1/models``), checks nothing about ``model``,
and checks requests inside the inference worker, where one bad request fails the whole batch it
joined. :class:`MixtureSpec` is a LitServe ``LitSpec`` (LitServe's own extension point): its
endpoints check and tokenise each request in the HTTP process (:mod:`samora.serve.requests`; a
bad one gets its own 400), then hand the model's input to LitServe's request queue. LitServe's
batching loop gathers up to ``max_batch_size`` queued requests within ``batch_timeout`` seconds,
whatever their task or endpoint, and :class:`MixtureAPI` answers them with one
:func:`~samora.serve.generation.stream_batch` (one ``generate`` per decoding group, each row
routed by its own task id). LitServe also brings the worker process, ``/health`` (200 once the
model is loaded), the request size limit and the graceful shutdown on SIGINT / SIGTERM.

Answers stream token by token: the worker's ``predict`` yields, after each decoding step, every
request's new text (:func:`~samora.serve.generation.stream_batch`), which LitServe's batched
streaming loop passes back per request; a non-streamed request gets the final answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import litserve as ls
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from litserve.specs.base import LitSpec
from litserve.utils import LitAPIStatus, ResponseBufferItem

from samora.serve.generation import GenerationRequest, stream_batch
from samora.serve.requests import RequestError, Served, generation_request, parse_body, prompt_ids
from samora.serve.responses import error_body, full_response, model_list, stream_events

logger = logging.getLogger(__name__)


class MixtureSpec(LitSpec):
    """``POST /v1/completions``, ``POST /v1/chat/completions`` and ``GET /v1/models`` (see the module docstring)."""

    def __init__(self, served: Served, tokenizer: Any) -> None:
        super().__init__()
        self.api_path = "/v1/completions"  # the request queue both generation endpoints share
        self.served = served
        self.tokenizer = tokenizer
        self.add_endpoint("/v1/completions", self.completions, ["POST"])
        self.add_endpoint("/v1/chat/completions", self.chat_completions, ["POST"])
        self.add_endpoint("/v1/models", self.models, ["GET"])

    @property
    def stream(self) -> bool:
        return True  # the worker's answers come back through LitServe's streaming queue

    def decode_request(self, request, context_kwargs=None):
        return request

    def encode_response(self, output, context_kwargs=None):
        yield from output

    async def completions(self, request: Request):
        return await self.answer(request, "completion")

    async def chat_completions(self, request: Request):
        return await self.answer(request, "chat")

    async def models(self):
        return model_list(self.served.model_ids(), owner="samora")

    async def answer(self, request: Request, kind: str):
        """Check the request, queue it for the next batch, and answer it (streamed or whole)."""
        try:
            body = parse_body(await _json_body(request), kind)
            route = self.served.route(body.model)
            tokens = prompt_ids(body, self.tokenizer)
            generation = generation_request(body, tokens, route, self.served)
        except RequestError as err:
            return JSONResponse(error_body(400, str(err), err.param), status_code=400)
        messages = self.pieces(generation)
        metadata = route.metadata()
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            events = stream_events(kind, body.model, messages, body.n, len(tokens), metadata, include_usage)
            return StreamingResponse(events, media_type="text/event-stream")
        choices, batch = await collect(messages, body.n)
        return full_response(kind, body.model, choices, len(tokens), {**metadata, "batch": batch})

    async def pieces(self, generation: GenerationRequest) -> AsyncIterator[dict]:
        """Put the request on LitServe's queue; yield the worker's messages for it as they come:
        ``{"pieces": [{"choice", "text", "finished"}, ...], "batch": requests decoded together}``."""
        uid = uuid.uuid4()
        queue, ready = deque(), asyncio.Event()
        self.response_buffer[uid] = ResponseBufferItem(response_queue=queue, event=ready)
        self.request_queue.put((self.response_queue_id, uid, time.monotonic(), generation))
        try:
            async for data, status in self.data_streamer(queue, ready, send_status=True):
                if status == LitAPIStatus.ERROR:
                    logger.error("generation failed: %s", data)
                    raise HTTPException(500, "generation failed; the server log has the error")
                yield json.loads(data)
        finally:
            self.response_buffer.pop(uid, None)


async def collect(messages: AsyncIterator[dict], n: int) -> tuple[list[dict], int]:
    """The ``n`` final choices of a request and the size of its batch, from the worker's messages."""
    finished, batch = {}, 1
    async for message in messages:
        batch = message["batch"]
        finished.update({piece["choice"]: piece["finished"] for piece in message["pieces"] if piece["finished"]})
    if len(finished) != n:
        raise HTTPException(500, "the inference worker returned no answer")
    return [finished[index] for index in range(n)], batch


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(f"the request body is not valid JSON ({err}); send a JSON object") from None


class MixtureAPI(ls.LitAPI):
    """The inference worker: loads the adapted model (``setup``) and answers each batch of queued
    requests with one :func:`~samora.serve.generation.stream_batch`. LitServe's defaults pass the
    requests through (``decode_request`` and ``encode_response`` are the spec's, ``batch`` keeps the
    list, ``unbatch`` splits each step's list per request).

    ``load``: a picklable callable returning ``(model, tokenizer)``, run in the worker process.
    ``api_key``: when set, ``/v1/*`` needs ``Authorization: Bearer <api_key>`` (OpenAI's header;
    ``/health`` stays open, as in vLLM).
    """

    def __init__(self, spec: MixtureSpec, load, *, max_batch_size: int, batch_timeout: float, api_key: str | None):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, spec=spec)
        self.load = load
        self.api_key = api_key

    def setup(self, device) -> None:
        self.model, self.tokenizer = self.load()
        self.model.eval()
        logger.info("samora serve: model ready on %s", device)

    def predict(self, x):
        """One batch (a list, when batching) or one request: after each decoding step, one JSON
        message per request with its new pieces of text (see :meth:`MixtureSpec.pieces`)."""
        batched = isinstance(x, list)
        requests = x if batched else [x]
        for pieces in stream_batch(self.model, self.tokenizer, requests):
            if not pieces:
                continue
            messages = [[] for _ in requests]
            for piece in pieces:
                finished = asdict(piece.finished) if piece.finished else None
                messages[piece.request].append({"choice": piece.choice, "text": piece.text, "finished": finished})
            encoded = [json.dumps({"pieces": message, "batch": len(requests)}) for message in messages]
            yield encoded if batched else encoded[0]

    def authorize(self, request: Request) -> None:
        """FastAPI dependency of every route: the bearer key on ``/v1/*`` when ``api_key`` is set."""
        if self.api_key is None or not request.url.path.startswith("/v1/"):
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), self.api_key):
            raise HTTPException(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'")


def openai_errors(app, exception_class: type[Exception]) -> None:
    """Answer the HTTP errors (``exception_class``: Starlette's, which FastAPI's and LitServe's
    extend: 401, 404, 405, 413, 500, ...) in OpenAI's error body."""

    async def handler(request: Request, err):
        return JSONResponse(error_body(err.status_code, str(err.detail)), status_code=err.status_code)

    app.add_exception_handler(exception_class, handler)
