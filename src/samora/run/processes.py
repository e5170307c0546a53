"""Which process of a distributed run (``torchrun`` / ``accelerate launch``) does what.

Every process trains, and every process also evaluates and analyses, on the same examples: under FSDP
and ZeRO-3 every forward gathers parameters from all processes, and under DDP a process left waiting
in a collective for the main process's evaluation would time out after ``ddp_timeout``. The main
process alone writes the run folder and logs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path


def is_main_process() -> bool:
    """True on the process that writes the run folder and logs (every process when not distributed)."""
    return int(os.environ.get("RANK", "0")) == 0  # set by torchrun / accelerate launch for every process


@contextlib.contextmanager
def main_only_folder(path: Path):
    """``path`` on the main process; a scratch folder, removed afterwards, on the others."""
    if is_main_process():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="samora-rank-") as scratch:
        yield Path(scratch)


@contextlib.contextmanager
def quiet_unless_main():
    """On a process other than the main one, samora's INFO lines are held back inside the block (the main
    process logs the same ones); warnings still show."""
    samora_logger = logging.getLogger("samora")
    level = samora_logger.level
    if not is_main_process():
        samora_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        samora_logger.setLevel(level)
