"""``samora train`` runs unchanged under ``torchrun`` and ``accelerate launch`` with two CPU processes
(gloo data parallel)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import run_overrides, subprocess_environment

LAUNCHERS = {
    "torchrun": ["torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    # on a machine without GPUs, accelerate starts its torch.distributed launcher only with --multi_gpu
    "accelerate": [
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
    ],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_samora_train_under_a_launcher_with_two_processes(launcher, tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    environment = subprocess_environment()
    command = [
        sys.executable,
        "-m",
        *LAUNCHERS[launcher],
        "-m",
        "samora.cli",
        "train",
        "--preset",
        "demo",
        *run_overrides(tiny_model_dir, run_dir),
    ]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 3 and set(metrics["after"]["tasks"]) == {"boolq", "piqa", "arc_easy"}
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file() and (run_dir / "report.md").is_file()
    assert finished.stderr.count("[samora] evaluating the adapted model") == 1  # the main process only
    assert finished.stderr.count("[samora] step 3/3 | loss") == 1  # one compact line per logging step, main only
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in history if "loss" in entry] == [1, 2, 3]
    assert metrics["train"]["processes"] == 2
