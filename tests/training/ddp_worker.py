"""Worker for test_distributed.py: a few data-parallel SamoraTrainer steps on a tiny model.

Launched as ``torchrun --nproc_per_node 2 ddp_worker.py OUTPUT_DIR`` by ``tests.helpers.run_on_two_processes``
(which puts the repository root on PYTHONPATH for ``tests.helpers``). Every rank saves its own copy
of the adapter to ``OUTPUT_DIR/rank<r>`` so the test can check that the ranks stayed identical.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import samora
from tests.helpers import Collator, adapted_model, tiny_dataset

# One optimizer step covers the whole 8-example dataset: 2 ranks x 2 micro-batches x 2 examples.
# The test runs the same configuration in one process with batch 8 and compares the results.
STEPS = 3
OPTIONS = dict(
    max_steps=STEPS,
    learning_rate=0.5,
    optim="sgd",
    max_grad_norm=0.0,
    logging_steps=1,
    warmup_ratio=0.0,
    disable_tqdm=True,
)
MODEL = dict(dropout=0.0, lambda_orth=0.05, lambda_match=0.5, perturb=0.2)


def main(output_dir: str) -> None:
    from samora.training import train

    model = adapted_model(**MODEL)
    result = train(
        model,
        None,
        tiny_dataset(8),
        output_dir=Path(output_dir) / "run",
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        data_collator=Collator(),
        **OPTIONS,
    )
    rank = int(os.environ["RANK"])
    samora.save_adapter(model, Path(output_dir) / f"rank{rank}")
    assert result.global_step == STEPS
    assert int(os.environ["WORLD_SIZE"]) == 2


if __name__ == "__main__":
    main(sys.argv[1])
