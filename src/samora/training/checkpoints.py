"""Adapter-only checkpoints for the Trainer: find the last complete one (loading: persistence)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path


TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The highest-numbered ``checkpoint-N`` folder whose ``trainer_state.json`` (written last) parses.

    The Trainer's own ``get_last_checkpoint`` takes the highest number even when that folder was left
    half-written by a crash or a full disk; resuming from it would then fail.
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in folder.iterdir()
                    if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
    for _, path in found:
        try:
            json.loads((path / TRAINER_STATE).read_text())
        except (OSError, ValueError):
            continue
        return str(path)
    return None
