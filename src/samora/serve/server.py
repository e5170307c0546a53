"""The LitServe server behind ``samora serve``: OpenAI's endpoints over mixed-task dynamic batches.

Why a spec of our own rather than LitServe's ``OpenAISpec``: that spec serves only
``/v1/chat/completions`` (no ``/v1/completions`` or ``/v1/models``), checks nothing about ``model``,
and checks requests inside the inference worker, where one bad request fails the whole batch it
joined. :class:`MixtureSpec` is a LitServe ``LitSpec`` (LitServe's own extension point): its
endpoints check and tokenise each request in the HTTP process (:mod:`samora.serve.requests`; a
bad one gets its own 400), then hand the model's input to LitServe's request queue. LitServe's
batching loop gathers up to ``max_batch_size`` queued requests within ``batch_timeout`` seconds,
whatever their task or endpoint, and :class:`MixtureAPI` answers them with one
:func:`~samora.serve.generation.generate_batch` (one ``generate`` per decoding group, each row
routed by its own task id). LitServe also brings the worker process, ``/health`` (200 once the
model is loaded), the request size limit and the graceful shutdown on SIGINT / SIGTERM.

A stream is sent once its batch has decoded (the completion's text in one chunk, then its finish
reason): the batch's ``generate`` call is what answers every row, so the text is not streamed
token by token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections import deque
from dataclasses import asdict
from typing import Any

import litserve as ls
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from litserve.specs.base import LitSpec
from litserve.utils import LitAPIStatus, ResponseBufferItem

from samora.serve.generation import GenerationRequest, generate_batch
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
        answer = await self.generate(generation)
        choices, metadata = answer["choices"], {**route.metadata(), "batch": answer["batch"]}
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            events = stream_events(kind, body.model, choices, len(tokens), metadata, include_usage)
            return StreamingResponse(events, media_type="text/event-stream")
        return full_response(kind, body.model, choices, len(tokens), metadata)

    async def generate(self, generation: GenerationRequest) -> dict:
        """Put the request on LitServe's queue and wait for its answer from the inference worker:
        ``{"choices": [...], "batch": number of requests decoded together}``."""
        uid = uuid.uuid4()
        queue, ready = deque(), asyncio.Event()
        self.response_buffer[uid] = ResponseBufferItem(response_queue=queue, event=ready)
        self.request_queue.put((self.response_queue_id, uid, time.monotonic(), generation))
        answer = None
        try:
            async for data, status in self.data_streamer(queue, ready, send_status=True):
                if status == LitAPIStatus.ERROR:
                    logger.error("generation failed: %s", data)
                    raise HTTPException(500, "generation failed; the server log has the error")
                answer = json.loads(data)
        finally:
            self.response_buffer.pop(uid, None)
        if answer is None:
            raise HTTPException(500, "the inference worker returned no answer")
        return answer


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(f"the request body is not valid JSON ({err}); send a JSON object") from None


class MixtureAPI(ls.LitAPI):
    """The inference worker: loads the adapted model (``setup``) and answers each batch of queued
    requests with one :func:`~samora.serve.generation.generate_batch`.

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

    def decode_request(self, request: GenerationRequest, **kwargs) -> GenerationRequest:
        return request

    def batch(self, inputs: list[GenerationRequest]) -> list[GenerationRequest]:
        return list(inputs)

    def predict(self, x):
        """One batch (a list, when batching) or one request: yield its answers, JSON per request."""
        batched = isinstance(x, list)
        results = generate_batch(self.model, self.tokenizer, x if batched else [x])
        size = len(results)
        answers = [json.dumps({"choices": [asdict(c) for c in choices], "batch": size}) for choices in results]
        yield answers if batched else answers[0]

    def unbatch(self, output):
        yield from output

    def encode_response(self, output, **kwargs):
        yield from output

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
