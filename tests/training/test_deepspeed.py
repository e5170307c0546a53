"""DeepSpeed ZeRO-3 through accelerate (``examples/accelerate/zero3.yaml``) on two CPU processes.

Every parameter is partitioned, the adapter's too: the regularisers are computed inside each adapted
layer's forward, where ZeRO-3 has gathered it; every process evaluates (their forwards gather
parameters together), so the run ends with exit 0 on every rank; the adapter is saved from the gathered
state dict, whole. The result equals one process with the same global batch (2 ranks x 2 examples
against 4 examples) within 1e-5: DeepSpeed sums the ranks' gradients in another order than one
backward does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("deepspeed")

from safetensors.torch import load_file  # noqa: E402

from samora.run.cli import main  # noqa: E402
from tests.helpers import ROOT, run_overrides, subprocess_environment  # noqa: E402

ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--main_process_port", "0"]
ZERO3 = ROOT / "examples" / "accelerate" / "zero3.yaml"
SHARED = ("eval.before=false", "train.warmup_ratio=0", "train.learning_rate=0.05", "adapter.dropout=0")


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def test_zero3_through_accelerate_exits_0_and_saves_the_one_process_adapter(tiny_model_dir, tmp_path):
    sharded, single = tmp_path / "zero3", tmp_path / "single"
    overrides = run_overrides(tiny_model_dir, sharded, *SHARED, "train.per_device_train_batch_size=2")
    command = [*ACCELERATE, "--config_file", str(ZERO3), "--mixed_precision", "no", "-m", "samora.run.cli"]
    finished = subprocess.run(
        [*command, "train", "--preset", "demo", *overrides],
        env=subprocess_environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]  # every rank exited 0
    assert "[samora] step 3/3" in finished.stderr and "DeepSpeed" in finished.stdout + finished.stderr

    assert main(["train", "--preset", "demo", *run_overrides(tiny_model_dir, single, *SHARED)]) == 0  # batch 4
    expected, got = adapter(single), adapter(sharded)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].shape == value.shape and got[key].numel() > 0, key  # whole, not a partition
        torch.testing.assert_close(got[key], value, atol=1e-5, rtol=1e-4, msg=key)
