"""One process at a time in a run folder: an exclusive OS file lock (``fcntl.flock``) held for the
whole run.

The lock file sits beside the folder (``runs/.demo.lock`` for ``runs/demo``), not in it, because
discarding a run renames the folder aside (:func:`samora.run.run_folder.prepare_run_folder`). It
holds the owner's process id and command line. The OS releases the lock when its process ends,
however it ends (exit, exception, kill, crash), so a lock file whose owner died is taken over, with a
message naming that process; a second command on a folder whose owner is alive is refused, naming
it. A lock file is removed by the process that releases it; a file replaced meanwhile is noticed
(its inode changed) and locked anew, so two processes never hold one folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from samora.config import ConfigError

logger = logging.getLogger(__name__)


def lock_path(run_dir: str | os.PathLike) -> Path:
    """The lock file of the run folder ``run_dir``: ``.NAME.lock`` beside it."""
    run_dir = Path(run_dir).absolute()
    return run_dir.with_name(f".{run_dir.name}.lock")


@contextlib.contextmanager
def run_folder_lock(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of ``run_dir`` inside the block; :class:`ConfigError` naming the owner
    when another live process holds it."""
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = _acquire(path, run_dir)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: a waiting process then finds the file gone and starts over
        handle.close()  # releases the lock


def _acquire(path: Path, run_dir: str | os.PathLike):
    while True:
        handle = open(path, "a+")  # noqa: SIM115 (held open for the run; closed by run_folder_lock)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(handle)
            handle.close()
            raise ConfigError(
                f"output_dir {str(run_dir)!r} is in use by another samora process ({owner}; lock file {path}); "
                "wait for it to finish (or stop it), or choose another output_dir"
            ) from None
        if _same_file(handle, path):
            break
        handle.close()  # its owner removed the file after we opened it: lock the new one
    previous = _owner(handle)
    if previous != "no owner recorded":
        logger.warning("taking over the lock of %s: %s, which is no longer running", run_dir, previous)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}: {' '.join(sys.argv)}\n")
    handle.flush()
    return handle


def _owner(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "no owner recorded"


def _same_file(handle, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False
