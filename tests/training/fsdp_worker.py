"""Worker for test_fsdp.py: the same few SGD steps under FSDP2 (``fully_shard``) and under DDP, on CPU.

Launched as ``torchrun --nproc_per_node 2 fsdp_worker.py OUTPUT_DIR`` by ``tests.helpers.run_on_two_processes``
(which puts the repository root on PYTHONPATH for ``tests.helpers``). For each case the adapter is
trained with FSDP2 (gloo) and saved from the gathered full state dict (``get_model_state_dict``), as
the Trainer does under FSDP; then trained again wrapped in DDP and saved. Each rank trains on its
half of one 8-example batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

import samora
from tests.helpers import Collator, adapted_model, tiny_dataset

STEPS = 3
LEARNING_RATE = 0.5
# regularised: one FSDP unit for the whole model; per_layer: one unit per decoder layer, as accelerate's
# transformer auto-wrap applies FSDP. Both with the regularisers on: each layer computes its terms in its
# own forward, where FSDP has its parameters gathered (outside it they are DTensor shards, and mixing
# them with plain tensors crashed: "aten.sub.Tensor got mixed torch.Tensor and DTensor").
REGULARISED = dict(dropout=0.0, lambda_orth=0.05, lambda_match=0.5, perturb=0.2)
CASES = {
    "regularised": dict(model=REGULARISED, per_layer=False),
    "per_layer": dict(model=REGULARISED, per_layer=True),
}


def half_batches():
    """The 8-example batch split in two (one half per rank), each padded on its own."""
    data = tiny_dataset(8)
    return [Collator()([data[i] for i in range(start, start + 4)]) for start in (0, 4)]


def sgd_steps(model, loss_of_step) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    model.train()
    for _ in range(STEPS):
        loss_of_step(model).backward()
        optimizer.step()
        optimizer.zero_grad()


def fsdp_run(case: dict, batch: dict, folder: Path) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    model = adapted_model(**case["model"])
    if case["per_layer"]:
        for layer in model.model.layers:
            fully_shard(layer)
    fully_shard(model)
    assert any(type(p).__name__ == "DTensor" for p in model.parameters())  # really sharded
    sgd_steps(model, lambda m: m(**batch).loss)
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() == 0:
        samora.save_adapter(model, folder, state_dict=full)


def ddp_run(case: dict, batch: dict, folder: Path) -> None:
    from torch.nn.parallel import DistributedDataParallel

    model = adapted_model(**case["model"])
    sgd_steps(DistributedDataParallel(model), lambda m: m(**batch).loss)
    if dist.get_rank() == 0:
        samora.save_adapter(model, folder)


def main(output_dir: str) -> None:
    dist.init_process_group("gloo")
    assert dist.get_world_size() == 2
    batch = half_batches()[dist.get_rank()]
    for name, case in CASES.items():
        fsdp_run(case, batch, Path(output_dir) / f"{name}-fsdp")
        ddp_run(case, batch, Path(output_dir) / f"{name}-ddp")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
