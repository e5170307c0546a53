"""Token-by-token text of the rows of one batched ``generate`` call, for streamed answers.

``generate`` runs in a thread and hands each step's new tokens (one per row) to a
:class:`StepQueue` (a transformers ``BaseStreamer``); the caller reads the steps and turns each
row's tokens into text with :class:`RowText`. The text sent so far is always a prefix of the final
answer: a row holds back a trailing incomplete character and any ending that could be the start of
one of its stop strings, and stops sending at its end of sequence, its ``max_tokens`` or a stop
string. The final answer itself (:func:`samora.serve.generation.finish` on ``generate``'s output)
is what a non-streamed request gets; a streamed one gets the rest of it as its last piece.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from transformers.generation.streamers import BaseStreamer

_DONE = object()


class StepQueue(BaseStreamer):
    """Receives ``generate``'s tokens: the prompt first (skipped), then one (batch,) tensor per step."""

    def __init__(self) -> None:
        self.steps: queue.Queue = queue.Queue()
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.steps.put(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


def generate_in_thread(run: Callable[[StepQueue], Any]) -> Iterator[list[int] | Any]:
    """Run ``run(streamer)`` (a ``generate`` call) in a thread; yield each step's tokens as they come,
    then ``run``'s return value last. An exception in the thread is raised here."""
    streamer = StepQueue()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = run(streamer)
        except BaseException as err:  # handed to the reading thread, which raises it
            outcome["error"] = err
        finally:
            streamer.steps.put(_DONE)

    thread = threading.Thread(target=target, name="samora-generate", daemon=True)
    thread.start()
    while (step := streamer.steps.get()) is not _DONE:
        yield step
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    yield outcome["value"]


class RowText:
    """The text one row has sent so far, grown token by token (see the module docstring)."""

    def __init__(self, tokenizer: Any, max_tokens: int, stop: Sequence[str], end_ids: Sequence[int]) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.stop = [text for text in stop if text]
        self.end_ids = set(end_ids)
        self.tokens: list[int] = []
        self.sent = ""
        self.closed = False

    def add(self, token: int) -> str:
        """Take the row's next token; return the new text that is safe to send ("" when none)."""
        if self.closed:
            return ""
        if token in self.end_ids:
            self.closed = True
            return ""
        self.tokens.append(token)
        self.closed = len(self.tokens) >= self.max_tokens
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if any(stop in text for stop in self.stop):
            self.closed = True
            return ""
        safe = text[: len(text) - held_back(text, self.stop)]
        if not safe.startswith(self.sent) or len(safe) <= len(self.sent):
            return ""
        new, self.sent = safe[len(self.sent) :], safe
        return new

    def rest(self, final_text: str) -> str:
        """What is left to send of the row's final answer."""
        return final_text[len(self.sent) :] if final_text.startswith(self.sent) else ""


def held_back(text: str, stop: Sequence[str]) -> int:
    """How many trailing characters of ``text`` to keep back: an incomplete character (U+FFFD from a
    partial byte sequence) and the longest ending that is the start of a stop string."""
    keep = len(text) - len(text.rstrip("\ufffd"))
    body = text[: len(text) - keep]
    longest = max(
        (size for string in stop for size in range(1, len(string)) if body.endswith(string[:size])), default=0
    )
    return keep + longest
