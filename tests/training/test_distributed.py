"""Two data-parallel CPU processes (gloo, launched by torchrun) train the same adapter as one process."""

from __future__ import annotations

from pathlib import Path

import torch

from samora.training import train
from tests.helpers import Collator, adapted_model, adapter_tensors, run_on_two_processes, tiny_dataset
from tests.training.ddp_worker import MODEL, OPTIONS

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def read(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_two_process_data_parallel_equals_one_process_with_the_same_global_batch(tmp_path):
    run_on_two_processes(WORKER, tmp_path, timeout=240)

    rank0, rank1 = read(tmp_path / "rank0"), read(tmp_path / "rank1")
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved_by_trainer = read(tmp_path / "run")
    assert all(torch.equal(saved_by_trainer[k], rank0[k]) for k in rank0)

    # One process, batch 8: same examples per step, so the same gradients if the task loss and the
    # regularisers are each weighted once per step across the two ranks.
    single = adapted_model(**MODEL)
    start = adapter_tensors(single)
    train(
        single,
        None,
        tiny_dataset(8),
        output_dir=tmp_path / "single",
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        data_collator=Collator(),
        **OPTIONS,
    )
    expected = adapter_tensors(single)
    for name in expected:
        assert torch.allclose(rank0[name], expected[name], atol=1e-5, rtol=1e-4), name
    assert max((expected[k] - start[k]).abs().max().item() for k in expected) > 1e-2  # training moved them
