"""Evaluation in a two-process run cannot time out: every process evaluates (the same examples), so none
waits in a collective for the main process's evaluation, whatever ``ddp_timeout`` is."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import run_overrides, subprocess_environment

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def test_an_evaluation_longer_than_ddp_timeout_does_not_end_the_run(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    # the evaluation before training (eval.before, the default) of 3 tasks x 16 examples takes longer than
    # the 2 s that the process group waits for a process before it gives up
    overrides = run_overrides(tiny_model_dir, run_dir, "train.ddp_timeout=2", "eval.limit=16")
    command = [*TORCHRUN, "-m", "samora.cli", "train", "--preset", "demo", *overrides]
    finished = subprocess.run(command, env=subprocess_environment(), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["processes"] == 2 and metrics["train"]["steps"] == 3
    assert all(entry["n"] == 16 for stage in ("before", "after") for entry in metrics[stage]["tasks"].values())
    records = (run_dir / "samples_before.jsonl").read_text().splitlines()
    assert len(records) == 3 * 16  # written once, by the main process
    assert finished.stderr.count("[samora] boolq: acc") == 2  # before and after, logged by the main process only
