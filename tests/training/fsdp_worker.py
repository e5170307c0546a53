"""Worker for test_fsdp.py: the same few SGD steps under FSDP2 (``fully_shard``) and under DDP, on CPU.

Launched as ``torchrun --nproc_per_node 2 fsdp_worker.py OUTPUT_DIR`` by ``tests.helpers.run_on_two_processes``
(which puts the repository root on PYTHONPATH for ``tests.helpers``). For each case the adapter is
trained with FSDP2 (gloo) and saved from the gathered full state dict (``get_model_state_dict``), as
the Trainer does under FSDP; then trained again wrapped in DDP and saved. Each rank trains on its
half of one 8-example batch, in ``micro_batches`` micro-batches per optimizer step (gradient
accumulation: each micro-batch's loss divided by their number, one backward each).
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
    "regularised": dict(model=REGULARISED, per_layer=False, micro_batches=1),
    "per_layer": dict(model=REGULARISED, per_layer=True, micro_batches=1),
    "per_layer_accumulated": dict(model=REGULARISED, per_layer=True, micro_batches=2),
}


def micro_batches(pieces: int) -> list[dict]:
    """The 8-example batch split in ``pieces`` micro-batches, each padded on its own."""
    data, size = tiny_dataset(8), 8 // pieces
    return [Collator()([data[i] for i in range(start, start + size)]) for start in range(0, 8, size)]


def rank_micro_batches(case: dict, rank: int) -> list[dict]:
    """The micro-batches of ``rank``: its half of the batch, in ``case["micro_batches"]`` pieces."""
    count = case["micro_batches"]
    return micro_batches(2 * count)[rank * count : (rank + 1) * count]


def sgd_steps(model, batches: list[dict]) -> None:
    """STEPS SGD steps, each accumulating the gradients of ``batches`` (loss / len(batches) each)."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    model.train()
    for _ in range(STEPS):
        for batch in batches:
            (model(**batch).loss / len(batches)).backward()
        optimizer.step()
        optimizer.zero_grad()


def fsdp_run(case: dict, batches: list[dict], folder: Path) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    model = adapted_model(**case["model"])
    if case["per_layer"]:
        for layer in model.model.layers:
            fully_shard(layer)
    fully_shard(model)
    assert any(type(p).__name__ == "DTensor" for p in model.parameters())  # really sharded
    sgd_steps(model, batches)
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() == 0:
        samora.save_adapter(model, folder, state_dict=full)


def ddp_run(case: dict, batches: list[dict], folder: Path) -> None:
    from torch.nn.parallel import DistributedDataParallel

    model = adapted_model(**case["model"])
    sgd_steps(DistributedDataParallel(model), batches)
    if dist.get_rank() == 0:
        samora.save_adapter(model, folder)


def main(output_dir: str) -> None:
    dist.init_process_group("gloo")
    assert dist.get_world_size() == 2
    for name, case in CASES.items():
        batches = rank_micro_batches(case, dist.get_rank())
        fsdp_run(case, batches, Path(output_dir) / f"{name}-fsdp")
        ddp_run(case, batches, Path(output_dir) / f"{name}-ddp")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
