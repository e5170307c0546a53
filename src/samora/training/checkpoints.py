"""Adapter-only checkpoints for the Trainer: find the last valid one (loading: persistence), and say
clearly when the disk is too full to write one.

A checkpoint holds the adapter and the trainer state (optimizer, scheduler, RNG, ``trainer_state.json``)
only; the tokenizer is written once per run, with the final adapter."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
TORCH_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The highest-numbered ``checkpoint-N`` folder that is complete and intact.

    The Trainer writes ``trainer_state.json`` last, so a folder without a parsable one was left
    half-written (a crash, a kill, a full disk). A folder with one can still be damaged later: its
    adapter must match the checksum in its config and its torch files (optimizer, scheduler, RNG)
    must be intact zip archives. A damaged folder is skipped with a warning and the previous one is
    used. (The Trainer's own ``get_last_checkpoint`` takes the highest number whatever its state.)
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))),
        reverse=True,
    )
    for _, path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        logger.warning("skipping checkpoint %s: %s; trying the previous one", path, problem)
    return None


def checkpoint_step(path: str | os.PathLike) -> int:
    """The optimizer steps done when the checkpoint folder ``path`` was written (its trainer state's
    ``global_step``)."""
    return int(json.loads((Path(path) / TRAINER_STATE).read_text())["global_step"])


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why the checkpoint folder ``path`` cannot be resumed from, or None when it can."""
    from samora.adapter_files import CONFIG_NAME, read_adapter_tensors

    path = Path(path)
    try:
        json.loads((path / TRAINER_STATE).read_text())
    except (OSError, ValueError) as err:
        return f"{TRAINER_STATE} is missing or unreadable ({err}): the checkpoint was not finished"
    if (path / CONFIG_NAME).exists():  # an adapter-only checkpoint (FSDP / DeepSpeed write their own files)
        try:
            read_adapter_tensors(path)
        except (OSError, ValueError) as err:
            return f"its adapter is damaged ({err})"
    for name in TORCH_FILES:
        file = path / name
        if file.exists() and not _intact_zip(file):
            return f"{name} is damaged (not an intact torch archive)"
    return None


def _intact_zip(path: Path) -> bool:
    """``torch.save`` writes a zip archive; a truncated or altered one fails its CRC check."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def disk_full_error(err: BaseException, output_dir: str | os.PathLike, trainable_bytes: int) -> OSError | None:
    """A clear ``OSError`` (ENOSPC) for ``err`` when it says the disk under ``output_dir`` is full
    (``OSError`` ENOSPC, or torch's ``RuntimeError`` for a failed write), else None. It names the folder,
    the space a checkpoint needs (the newest checkpoint's size; without one, about 3 x the trainable
    weights: the adapter and Adam's two moments) and the space left."""
    full = isinstance(err, OSError) and err.errno == errno.ENOSPC
    full = full or (isinstance(err, RuntimeError) and ("write failed" in str(err) or "No space" in str(err)))
    if not full:
        return None
    folder = Path(output_dir)
    newest = last_complete_checkpoint(folder)
    needed = _folder_bytes(Path(newest)) if newest else 3 * trainable_bytes
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), folder)
    free = shutil.disk_usage(existing).free
    return OSError(
        errno.ENOSPC,
        f"the disk holding {folder} is full: a checkpoint needs about {_megabytes(needed)} and "
        f"{_megabytes(free)} are free. Free some space (or set train.save_total_limit to keep fewer "
        "checkpoints), then rerun the same command: it resumes from the last complete checkpoint",
    )


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"
