"""The OpenAI request bodies ``samora serve`` accepts, checked before they reach the model.

Every check happens in the HTTP process, so a bad request is answered alone with a 400 (OpenAI's
error body, naming the field and the limit) and never fails the batch it would have joined:

- the body must be JSON of the right types (pydantic, strict: ``"max_tokens": "5"`` is refused);
- ``model`` names a served task: ``"boolq"``, ``"<adapter>:boolq"``, or the adapter itself for a
  method that needs no task; an unknown one takes ``--default-task`` when set, else a 400 that lists
  the served tasks (:meth:`Served.route`);
- the prompt (for chat: the tokenizer's chat template over the messages) must be non-empty and at
  most ``--max-prompt-tokens`` tokens; ``max_tokens`` at most ``--max-tokens-limit``, and prompt plus
  ``max_tokens`` within the model's context window.

Defaults follow the OpenAI API as vLLM serves it: ``temperature`` 1, ``top_p`` 1, ``n`` 1;
``max_tokens`` 16 for completions and, for chat, what is left of the context window (at most
``--max-tokens-limit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from samora.serve.generation import GenerationRequest, Sampling

MAX_CHOICES = 16  # the most completions (n) one request may ask for
UNSEEN = "unseen"  # --default-task value: route unknown tasks through the method's unseen-task route (id -1)
UNSEEN_TASK_ID = -1


class RequestError(ValueError):
    """A request the server refuses (HTTP 400); ``param`` names the offending field when there is one."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class _Body(BaseModel):
    """The fields completions and chat share (unknown fields are ignored, as vLLM does)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, bool] | None = None


class CompletionBody(_Body):
    prompt: str
    max_tokens: int | None = Field(16, ge=1)


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class ChatBody(_Body):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)


@dataclass(frozen=True)
class Route:
    """Where a request's ``model`` field sends it: the task's name and id (None for a task-less
    adapter) and, when ``--default-task`` took it, the name that was asked for."""

    task: str | None
    task_id: int | None
    requested: str
    defaulted: bool = False

    def metadata(self) -> dict[str, Any]:
        """What the response's ``samora`` field reports (the default taking an unknown task is logged here)."""
        note = {"task": self.task, "task_id": self.task_id, "requested": self.requested}
        if self.defaulted:
            route = "the unseen-task route (id -1)" if self.task_id == UNSEEN_TASK_ID else f"task {self.task!r}"
            note["default"] = f"{self.requested!r} is not a served task; --default-task sent it to {route}"
        return note


@dataclass(frozen=True)
class Served:
    """What the HTTP process knows of the served adapter, to check and route requests."""

    name: str
    method: str
    tasks: tuple[str, ...]
    needs_task: bool
    default_task: str | None
    context_window: int
    max_prompt_tokens: int
    max_tokens_limit: int

    def model_ids(self) -> list[str]:
        """The ``model`` values /v1/models lists: each task, and ``<adapter>:<task>``, then the adapter."""
        return [*self.tasks, *(f"{self.name}:{task}" for task in self.tasks), self.name]

    def route(self, model: str) -> Route:
        """The task a request's ``model`` field names (see the module docstring)."""
        task = model.removeprefix(f"{self.name}:")
        if task in self.tasks:
            return Route(task, self.tasks.index(task), model)
        if model == self.name and not self.needs_task and self.default_task is None:
            return Route(None, None, model)
        if self.default_task == UNSEEN:
            return Route(UNSEEN, UNSEEN_TASK_ID, model, defaulted=True)
        if self.default_task is not None:
            return Route(self.default_task, self.tasks.index(self.default_task), model, defaulted=True)
        raise RequestError(
            f"unknown model {model!r}: this server serves the tasks {list(self.tasks)} of the {self.method} "
            f"adapter {self.name!r}; send model='<task>' or '{self.name}:<task>' (GET /v1/models lists them)",
            param="model",
        )


def parse_body(data: Any, kind: Literal["completion", "chat"]) -> CompletionBody | ChatBody:
    """The request body checked against its schema; a 400 naming each wrong field otherwise."""
    if not isinstance(data, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(data).__name__}")
    schema = CompletionBody if kind == "completion" else ChatBody
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in err.errors()
        )
        first = err.errors()[0]["loc"]
        raise RequestError(f"invalid request: {problems}", param=str(first[0]) if first else None) from None


def prompt_ids(body: CompletionBody | ChatBody, tokenizer: Any) -> list[int]:
    """The prompt's tokens: the completion prompt as the tokenizer encodes it (special tokens
    included), or the chat template over the messages with the assistant's turn opened."""
    if isinstance(body, CompletionBody):
        if not body.prompt:
            raise RequestError("prompt is empty: send at least one character of text", param="prompt")
        return tokenizer(body.prompt, add_special_tokens=True)["input_ids"]
    if tokenizer.chat_template is None:
        raise RequestError("this model's tokenizer has no chat template: use /v1/completions", param="messages")
    messages = [{"role": message.role, "content": message.text()} for message in body.messages]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def generation_request(body: CompletionBody | ChatBody, tokens: list[int], route: Route, served: Served):
    """The model's input for a checked body: its tokens, task id and sampling, within the limits."""
    if len(tokens) > served.max_prompt_tokens:
        raise RequestError(
            f"the prompt is {len(tokens)} tokens; this server accepts at most {served.max_prompt_tokens} "
            "prompt tokens (--max-prompt-tokens)",
            param="messages" if isinstance(body, ChatBody) else "prompt",
        )
    max_tokens = _max_tokens(body, len(tokens), served)
    if len(tokens) + max_tokens > served.context_window:
        raise RequestError(
            f"this model's maximum context length is {served.context_window} tokens; the request asks for "
            f"{len(tokens) + max_tokens} ({len(tokens)} in the prompt, {max_tokens} to generate): "
            "shorten the prompt or lower max_tokens",
            param="max_tokens",
        )
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    sampling = Sampling(max_tokens, body.temperature, body.top_p, body.n, stop, body.seed)
    return GenerationRequest(tuple(tokens), route.task_id, sampling)


def _max_tokens(body: CompletionBody | ChatBody, prompt_tokens: int, served: Served) -> int:
    """The request's ``max_tokens`` (chat: or ``max_completion_tokens``), checked against the limit;
    unset for chat, what is left of the context window, at most the limit."""
    asked = body.max_tokens
    if isinstance(body, ChatBody) and body.max_completion_tokens is not None:
        asked = body.max_completion_tokens
    if asked is None:
        return max(1, min(served.max_tokens_limit, served.context_window - prompt_tokens))
    if asked > served.max_tokens_limit:
        raise RequestError(
            f"max_tokens {asked} is over this server's limit of {served.max_tokens_limit} (--max-tokens-limit)",
            param="max_tokens",
        )
    return asked
