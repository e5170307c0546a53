"""``history.jsonl``: every entry the Trainer logs (each logged scalar, with its step), one JSON line each.

The file mirrors ``TrainerState.log_history``: each entry is appended (and flushed) as it is logged, so a
crashed run keeps everything logged before the crash; at the start of training the file is rewritten
from ``state.log_history`` in one atomic replace, which after a resume holds the checkpoint's entries
only. A resumed run therefore has each logged step once: the entries a killed run wrote after its last
checkpoint are dropped and logged again when those steps are redone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import TrainerCallback


class HistoryFile(TrainerCallback):
    """Writes the training log history to ``path`` (main process only); see the module docstring."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text("".join(_line(entry) for entry in state.log_history))
        os.replace(temporary, self.path)
        self._file = open(self.path, "a", buffering=1)  # line-buffered: each entry reaches the file at once

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._file is not None and state.log_history:
            self._file.write(_line(state.log_history[-1]))  # the entry just logged, with its step

    def on_train_end(self, args, state, control, **kwargs):
        if self._file is not None:
            self._file.close()
            self._file = None


def _line(entry: dict) -> str:
    return json.dumps(entry, default=str) + "\n"


def read_history(path: str | os.PathLike) -> list[dict]:
    """The entries of a ``history.jsonl`` file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]
