"""One process per run folder (issue #24, defect 2): an exclusive OS lock held for the whole run,
released on exit or crash, a dead owner's lock taken over with a message."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from samora.cli import main
from samora.config import ConfigError
from samora.run.folder_lock import lock_path, run_folder_lock
from tests.helpers import run_overrides, subprocess_environment

HOLD_AND_WAIT = (
    "import sys, time\n"
    "from samora.run.folder_lock import run_folder_lock\n"
    "with run_folder_lock(sys.argv[1]):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)


def wait_for_lock(path, process, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.read_text().startswith("pid")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first command never took the lock"
        time.sleep(0.05)


def test_a_second_train_on_a_running_folder_is_refused(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "samora", "train", *run_overrides(tiny_model_dir, run)]
    first = subprocess.Popen(command, env=subprocess_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_lock(lock_path(run), first)
        assert main(["train", *run_overrides(tiny_model_dir, run)]) == 2
        error = capsys.readouterr().err
        assert f"is in use by another samora process (pid {first.pid}" in error
        out, err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, err.decode()[-3000:]
    assert (run / "metrics.json").is_file()
    assert not lock_path(run).exists()  # released (and removed) when the first command ended


def test_a_crashed_owners_lock_is_taken_over_with_a_message(tmp_path, caplog):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, str(run)], env=subprocess_environment(), stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(ConfigError, match=f"in use by another samora process \\(pid {holder.pid}"):
            with run_folder_lock(run):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no clean-up, the lock file stays
        holder.wait()
    assert lock_path(run).is_file()
    with caplog.at_level(logging.WARNING, logger="samora"), run_folder_lock(run):
        assert lock_path(run).read_text().startswith(f"pid {os.getpid()}")
    assert f"taking over the lock of {run}: pid {holder.pid}" in caplog.text
    assert "no longer running" in caplog.text
