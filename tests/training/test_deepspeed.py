"""DeepSpeed ZeRO-2 and ZeRO-3 through accelerate (``examples/accelerate/zero2.yaml``, ``zero3.yaml``) on
two CPU processes.

Under ZeRO-3 every parameter is partitioned, the adapter's too: the regularisers are computed inside each adapted
layer's forward, where ZeRO-3 has gathered it; every process evaluates (their forwards gather
parameters together), so the run ends with exit 0 on every rank; the adapter is saved from the gathered
state dict, whole. The result equals one process with the same global batch (2 ranks x 2 examples
against 4 examples) within 1e-5: DeepSpeed sums the ranks' gradients in another order than one
backward does.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

pytest.importorskip("deepspeed")

from safetensors.torch import load_file  # noqa: E402

from samora.cli import main  # noqa: E402
from tests.helpers import ROOT, run_overrides, subprocess_environment  # noqa: E402

ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--main_process_port", "0"]
CONFIGS = ROOT / "examples" / "accelerate"
SHARED = (
    *("eval.before=false", "train.warmup_ratio=0", "train.learning_rate=0.05", "adapter.dropout=0"),
    *("adapter.lambda_orth=0.5", "adapter.lambda_match=0.5"),  # regularisers that move the adapter well past 1e-5
)


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def one_process(tiny_model_dir, tmp_path_factory) -> dict[str, torch.Tensor]:
    """The adapter of the same run in one process with batch 4 (the two processes' global batch)."""
    run_dir = tmp_path_factory.mktemp("single") / "run"
    assert main(["train", "--preset", "demo", *run_overrides(tiny_model_dir, run_dir, *SHARED)]) == 0
    return adapter(run_dir)


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_through_accelerate_exits_0_and_saves_the_one_process_adapter(
    stage, one_process, tiny_model_dir, tmp_path
):
    run_dir = tmp_path / stage
    overrides = run_overrides(tiny_model_dir, run_dir, *SHARED, "train.per_device_train_batch_size=2")
    config = CONFIGS / f"{stage}.yaml"
    command = [*ACCELERATE, "--config_file", str(config), "--mixed_precision", "no", "-m", "samora.cli"]
    finished = subprocess.run(
        [*command, "train", "--preset", "demo", *overrides],
        env=subprocess_environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    # every rank exited 0, and DeepSpeed ran: asked for but not set up, the Trainer stops with an error
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "[samora] step 3/3" in finished.stderr
    got = adapter(run_dir)
    assert got.keys() == one_process.keys()
    for key, value in one_process.items():
        assert got[key].shape == value.shape and got[key].numel() > 0, key  # whole, not a partition
        torch.testing.assert_close(got[key], value, atol=1e-5, rtol=1e-4, msg=key)


def test_a_killed_zero3_run_resumes_with_the_same_command_and_ends_at_the_one_process_adapter(
    tiny_model_dir, tmp_path
):
    """Killed (launcher and both ranks) after its step-2 checkpoint, a ZeRO-3 run with the adapter partitioned
    resumes from that checkpoint (DeepSpeed's partitioned optimizer state with it) and ends where one process
    with the same global batch ends, within the same 1e-5 as an uninterrupted run."""
    steps = ("train.max_steps=4", "train.save_steps=2", "data.per_task_cap=8")  # 24 examples: one epoch
    single = tmp_path / "single"
    assert main(["train", "--preset", "demo", *run_overrides(tiny_model_dir, single, *SHARED, *steps)]) == 0
    run_dir = tmp_path / "zero3"
    overrides = run_overrides(tiny_model_dir, run_dir, *SHARED, *steps, "train.per_device_train_batch_size=2")
    launch = [*ACCELERATE, "--config_file", str(CONFIGS / "zero3.yaml"), "--mixed_precision", "no", "-m", "samora.cli"]
    command = [*launch, "train", "--preset", "demo", *overrides]
    process = subprocess.Popen(
        command,
        env=subprocess_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not (run_dir / "adapter" / "checkpoint-2" / "trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    ranks = psutil.Process(process.pid).children(recursive=True)  # torch's launcher gives each its own session
    for victim in [process, *ranks]:
        victim.send_signal(signal.SIGKILL)  # the launcher and every rank, as a crash of the machine would
    process.wait()
    psutil.wait_procs(ranks, timeout=30)
    assert not (run_dir / "adapter" / "adapter_model.safetensors").exists(), "killed after training ended"

    resumed = subprocess.run(command, env=subprocess_environment(), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming the unfinished run in {run_dir} from {run_dir / 'adapter' / 'checkpoint-'}" in resumed.stderr
    assert "[samora] step 4/4" in resumed.stderr and "step 5/" not in resumed.stderr
    expected, got = adapter(single), adapter(run_dir)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].shape == value.shape and got[key].numel() > 0, key
        torch.testing.assert_close(got[key], value, atol=1e-5, rtol=1e-4, msg=key)
