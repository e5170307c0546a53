"""The training settings a user chooses, defined once: the ``train`` section of a run configuration
(:class:`samora.run.sections.TrainSection`) and the keywords of :func:`samora.training.train`
(:class:`samora.training.TrainSettings`) both extend :class:`TrainingSettings`, so their names (those of
``transformers.TrainingArguments``), defaults and rules (:func:`samora.config.setting`, checked by
:class:`samora.config.Rule` as the method configs' fields are) cannot drift apart. It imports only
:mod:`samora.config` and :mod:`samora.training.transformers_source` (the scheduler names, read from the
installed transformers' source): the command line reads it before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from samora.config import setting
from samora.training.transformers_source import scheduler_types

PRECISIONS = {
    "auto": "bf16 on a GPU that supports it, else fp32",
    "fp32": "",
    "bf16": "mixed-precision autocast",
    "fp16": "mixed-precision autocast, CUDA only",
}
NONFINITE_ACTIONS = ("stop", "skip")


@dataclass
class TrainingSettings:
    """The SAMoRA scripts' defaults: AdamW, linear schedule with 1% warmup, no weight decay, one epoch,
    batch 8, lr 2e-4, seed 41.

    Attributes:
        max_steps: optimizer steps; overrides ``num_train_epochs`` when given.
        per_device_train_batch_size: examples per device (per process) and micro-batch.
        gradient_accumulation_steps: micro-batches per optimizer step.
        lr_scheduler_type: one of the installed transformers' ``SchedulerType`` values (``linear``,
            ``cosine``, ``constant``...).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (adapter weights stay float32).
        gradient_checkpointing: recompute activations in the backward pass (non-reentrant).
        logging_steps: log the loss, learning rate and router statistics every this many steps (a loss
            curve even for a 25-step demo).
        save_steps: also write a resumable checkpoint every this many steps (``checkpoint-N``: adapter,
            optimizer, scheduler, RNG and trainer state); save_total_limit: keep only the newest this many.
        on_nonfinite: ``stop`` raises :class:`~samora.training.divergence.TrainingDiverged` at the first
            non-finite loss or gradient (the Trainer's ``logging_nan_inf_filter`` is off, so the logs show
            such losses as they are); ``skip`` drops that step's update and counts it in the logs
            (``nonfinite_skipped_steps``). A NaN/inf adapter is never saved.
        report_to: logging integrations, as in ``TrainingArguments`` ("tensorboard", "wandb"...).
    """

    max_steps: int | None = setting(None, gt=0)
    num_train_epochs: float = setting(1.0, gt=0)
    # 0 is allowed, as the Trainer allows it: the adapter stays put while the rest of a step runs
    # (SMoRA's load balancing, the logs), which tests and measurements use
    learning_rate: float = setting(2e-4, ge=0)
    per_device_train_batch_size: int = setting(8, gt=0)
    gradient_accumulation_steps: int = setting(1, gt=0)
    warmup_ratio: float = setting(0.01, ge=0, lt=1, meaning="a fraction of the training steps")
    weight_decay: float = setting(0.0, ge=0)
    lr_scheduler_type: str = setting("linear", choices=scheduler_types)  # transformers' SchedulerType values
    seed: int = setting(41, ge=0, lt=2**32)  # numpy's seeds
    precision: str = setting("auto", choices=PRECISIONS)
    gradient_checkpointing: bool = False
    logging_steps: int = setting(5, gt=0)
    save_steps: int | None = setting(None, gt=0)
    save_total_limit: int | None = setting(None, gt=0)
    on_nonfinite: str = setting("stop", choices=NONFINITE_ACTIONS)
    report_to: str | list[str] = "none"
