"""Worker for test_smora_balancing.py: SMoRA trained data-parallel on padded batches.

Launched as ``torchrun --nproc_per_node 2 smora_ddp_worker.py OUTPUT_DIR`` by ``tests.helpers.run_on_two_processes``
(which puts the repository root on PYTHONPATH for ``tests.helpers``): 2 ranks x 2 examples per
optimizer step. The test trains the same global batch of 4 in one process and compares the biases.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers import Collator, smora_model, tiny_dataset

# lr 0: the router stays fixed, so only the load (and so the bias) can tell the runs apart; the
# bias itself changes which ranks are chosen from step to step.
STEPS = 4
OPTIONS = dict(
    max_steps=STEPS,
    learning_rate=0.0,
    optim="sgd",
    max_grad_norm=0.0,
    logging_steps=1,
    warmup_ratio=0.0,
    disable_tqdm=True,
)


def main(output_dir: str) -> None:
    import samora
    from samora.training import train

    model = smora_model()
    train(
        model,
        None,
        tiny_dataset(4 * STEPS, min_len=3, max_len=12),
        output_dir=Path(output_dir) / "run",
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        data_collator=Collator(),
        **OPTIONS,
    )
    samora.save_adapter(model, Path(output_dir) / "adapter")


if __name__ == "__main__":
    main(sys.argv[1])
