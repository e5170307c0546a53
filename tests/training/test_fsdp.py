"""FSDP2 (``fully_shard``) on two CPU processes (gloo) trains and saves the same adapter as DDP and as
one process that averages the two ranks' losses, with and without gradient accumulation (the
regularisers counted once per optimizer step either way). Tolerance: 1e-5 absolute, 1e-4 relative.

The Trainer's FSDP goes through accelerate, which enables FSDP on GPUs only; this drives
``torch.distributed.fsdp.fully_shard`` directly, which runs on CPU, and saves from the gathered full
state dict as the Trainer does under FSDP (``save_adapter(..., state_dict=...)``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import adapted_model, adapter_tensors, run_on_two_processes
from tests.training.fsdp_worker import CASES, micro_batches, sgd_steps

WORKER = Path(__file__).resolve().parent / "fsdp_worker.py"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fsdp")
    run_on_two_processes(WORKER, folder, timeout=300)
    return folder


def one_process(case: dict) -> tuple[dict, dict]:
    """(start, end) adapter tensors of the same steps in one process, accumulating every micro-batch of
    both ranks: each rank's loss is the mean of its micro-batches', and the ranks' gradients are averaged."""
    model = adapted_model(**case["model"])
    start = adapter_tensors(model)
    sgd_steps(model, micro_batches(2 * case["micro_batches"]))
    return start, adapter_tensors(model)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fsdp_on_two_cpu_processes_saves_the_ddp_and_one_process_adapter(saved, name):
    fsdp = load_file(str(saved / f"{name}-fsdp" / "adapter_model.safetensors"))
    ddp = load_file(str(saved / f"{name}-ddp" / "adapter_model.safetensors"))
    start, expected = one_process(CASES[name])
    assert fsdp.keys() == ddp.keys() == expected.keys()
    for key in expected:
        assert fsdp[key].shape == expected[key].shape, key  # gathered, not this rank's shard
        torch.testing.assert_close(fsdp[key], ddp[key], atol=1e-5, rtol=1e-4, msg=key)
        torch.testing.assert_close(fsdp[key], expected[key], atol=1e-5, rtol=1e-4, msg=key)
    assert max((expected[k] - start[k]).abs().max().item() for k in expected) > 1e-2  # training moved them
