"""``train``: one call from an adapted model and a tokenised dataset to a trained, saved adapter."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from samora.inject import adapter_of
from samora.training.callbacks import StepLines
from samora.training.checkpoints import last_complete_checkpoint
from samora.training.trainer import SamoraTrainer

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PROGRESS = ("bar", "lines")


@dataclass
class TrainResult:
    """What a :func:`train` call did.

    Attributes:
        adapter_dir: where the final adapter was saved (``output_dir``).
        global_step: optimizer steps done (counting those before a resume).
        train_loss: mean training loss (task loss + regularisers) over the steps of this call.
        loss_history: ``(step, loss)`` at every logging step (after a resume, the earlier steps' too).
        runtime_s: wall time of the training loop.
        tokens_seen: non-padding input tokens processed in this call, summed over processes.
        tokens_per_second: ``tokens_seen / runtime_s``.
        resumed_from: the checkpoint this call resumed from, if any.
        log_history: every log entry the Trainer recorded (router statistics included).
    """

    adapter_dir: Path
    global_step: int
    train_loss: float
    loss_history: list[tuple[int, float]]
    runtime_s: float
    tokens_seen: float
    tokens_per_second: float
    resumed_from: str | None = None
    log_history: list[dict] = field(default_factory=list, repr=False)


def train(
    model: torch.nn.Module,
    tokenizer,
    train_dataset,
    *,
    output_dir: str | os.PathLike,
    max_steps: int | None = None,
    num_epochs: float = 1.0,
    learning_rate: float = 2e-4,
    batch_size: int = 8,
    grad_accum: int = 1,
    warmup_ratio: float = 0.01,
    weight_decay: float = 0.0,
    lr_scheduler: str = "linear",
    seed: int = 41,
    precision: str = "auto",
    gradient_checkpointing: bool = False,
    logging_steps: int = 10,
    save_steps: int | None = None,
    save_total_limit: int | None = None,
    eval_dataset=None,
    eval_steps: int | None = None,
    data_collator: Callable | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    resume: bool | str = False,
    on_nonfinite: str = "stop",
    report_to: str | list[str] = "none",
    logging_dir: str | os.PathLike | None = None,
    progress: str = "bar",
    **training_arguments,
) -> TrainResult:
    """Train the adapter of ``model`` with :class:`SamoraTrainer` and save it to ``output_dir``.

    Defaults follow the SAMoRA scripts: AdamW, linear schedule with 1% warmup, no weight decay, one
    epoch, batch 8, lr 2e-4, seed 41. Launch the calling script with ``torchrun`` or
    ``accelerate launch`` for data-parallel training (``batch_size`` is per device).

    Args:
        model: adapted by :func:`samora.get_model` (its adapter parameters are the trainable ones).
        tokenizer: saved next to each checkpoint; also builds the default collator.
        train_dataset: examples with ``input_ids``, ``attention_mask``, ``labels`` (-100 = ignored)
            and ``task_ids`` (e.g. ``samora.data.build_training_stream``).
        max_steps: optimizer steps; overrides ``num_epochs`` when given.
        grad_accum: micro-batches per optimizer step.
        precision: ``"auto"`` (bf16 on a GPU that supports it, else fp32), ``"fp32"``, ``"bf16"``
            or ``"fp16"`` (mixed-precision autocast; adapter weights stay float32).
        gradient_checkpointing: recompute activations in the backward pass (non-reentrant).
        save_steps: also write a resumable checkpoint every this many steps
            (``output_dir/checkpoint-N``: adapter, optimizer, scheduler, RNG and trainer state).
        eval_dataset / eval_steps: evaluate the loss every ``eval_steps`` (default: ``logging_steps``).
        data_collator: default ``samora.data.MultiTaskCollator(tokenizer)``.
        resume: True resumes from the last complete checkpoint in ``output_dir``; a path resumes
            from that checkpoint.
        on_nonfinite: ``"stop"`` raises :class:`~samora.training.divergence.TrainingDiverged` at the first
            non-finite loss or gradient (the Trainer's ``logging_nan_inf_filter`` is off, so the logs
            show such losses as they are); ``"skip"`` drops that step's update and counts it in the
            logs (``nonfinite_skipped_steps``). A NaN/inf adapter is never saved.
        report_to: logging integrations, as in ``TrainingArguments`` ("tensorboard", "wandb"...).
        logging_dir: where TensorBoard writes its event files (default: the Trainer's,
            ``output_dir/runs/<date>_<host>``).
        progress: ``"bar"``: the Trainer's own console output (its tqdm bar with loss and tokens/s, or its
            print of every log entry with ``disable_tqdm``); ``"lines"``: no bar, one
            line per logging step (step, loss, lr, grad norm, tokens/s, ETA) on the ``samora`` logger
            at INFO (:class:`~samora.training.callbacks.StepLines`; what the ``samora`` CLI shows).
        **training_arguments: any other ``transformers.TrainingArguments`` field (``fsdp``,
            ``deepspeed``, ``max_grad_norm``, ``optim``...).
    """
    adapter_of(model)  # a clear error for a model without an adapter
    if not 0.0 <= warmup_ratio < 1.0:
        raise ValueError(f"warmup_ratio is a fraction of the training steps in [0, 1), got {warmup_ratio}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if progress not in PROGRESS:
        raise ValueError(f"progress must be one of {PROGRESS}, got {progress!r}")
    if data_collator is None:
        data_collator = _default_collator(tokenizer)
    resumed_from = _checkpoint_to_resume(resume, output_dir)
    options = {
        "output_dir": str(output_dir),
        "max_steps": max_steps if max_steps is not None else -1,
        "num_train_epochs": num_epochs,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": batch_size,
        "per_device_eval_batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "weight_decay": weight_decay,
        "lr_scheduler_type": lr_scheduler,
        "optim": "adamw_torch",
        "seed": seed,
        "logging_steps": logging_steps,
        "save_strategy": "steps" if save_steps else "no",
        "save_steps": save_steps or 500,
        "save_total_limit": save_total_limit,
        "eval_strategy": "steps" if eval_dataset is not None else "no",
        "eval_steps": eval_steps or logging_steps,
        "report_to": report_to,
        "logging_nan_inf_filter": on_nonfinite == "skip",  # skip: a skipped step's loss is left out of the mean
        **_version_arguments(warmup_ratio, gradient_checkpointing, logging_dir),
        **_precision_arguments(precision),
        **({"disable_tqdm": True} if progress == "lines" else {}),
    }
    arguments = TrainingArguments(**(options | training_arguments))  # explicit TrainingArguments fields win
    trainer = SamoraTrainer(
        model=model,
        args=arguments,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        processing_class=tokenizer,
        callbacks=list(callbacks),
        on_nonfinite=on_nonfinite,
    )
    if progress == "lines":  # neither the dict print of every log entry nor the bar (which also prints them)
        for console in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(console)
        trainer.add_callback(StepLines())
    if logging_dir is not None:
        _point_tensorboard_at(trainer, logging_dir)
    output = trainer.train(resume_from_checkpoint=resumed_from)
    trainer.save_model(str(output_dir))
    history = trainer.state.log_history
    runtime = float(output.metrics.get("train_runtime", 0.0))
    tokens = trainer.tokens_seen
    return TrainResult(
        adapter_dir=Path(output_dir),
        global_step=output.global_step,
        train_loss=float(output.training_loss),
        loss_history=[(entry["step"], entry["loss"]) for entry in history if "loss" in entry and "step" in entry],
        runtime_s=runtime,
        tokens_seen=tokens,
        tokens_per_second=tokens / runtime if runtime > 0 else 0.0,
        resumed_from=resumed_from,
        log_history=list(history),
    )


def _checkpoint_to_resume(resume: bool | str, output_dir) -> str | None:
    if resume is True:
        found = last_complete_checkpoint(output_dir)
        if found is None:
            raise ValueError(f"resume=True but {output_dir} holds no complete checkpoint-N folder to resume from")
        return found
    return str(resume) if resume else None


def _version_arguments(warmup_ratio: float, checkpointing: bool, logging_dir) -> dict:
    """Warmup, activation checkpointing and TensorBoard's folder under the names this transformers
    version uses."""
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    arguments = {prefix: checkpointing, f"{prefix}_kwargs": {"use_reentrant": False} if checkpointing else None}
    if "warmup_ratio" in fields:  # transformers 4: a separate ratio field
        arguments["warmup_ratio"] = warmup_ratio
    else:  # transformers 5: warmup_steps below 1 is a ratio
        arguments["warmup_steps"] = warmup_ratio
    if logging_dir is not None and "logging_dir" in fields:  # transformers 4 (5: see _point_tensorboard_at)
        arguments["logging_dir"] = str(logging_dir)
    return arguments


def _point_tensorboard_at(trainer: SamoraTrainer, logging_dir) -> None:
    """transformers 5 has no ``logging_dir`` argument: its TensorBoardCallback writes to the folder it
    is given (``tb_writer``), else to ``output_dir/runs/...``. Replace the Trainer's callback by one
    writing to ``logging_dir`` (main process only; the others write no events)."""
    from transformers.integrations import TensorBoardCallback

    if "logging_dir" in {f.name for f in dataclasses.fields(TrainingArguments)} or not trainer.is_world_process_zero():
        return
    if trainer.pop_callback(TensorBoardCallback) is not None:
        from torch.utils.tensorboard import SummaryWriter

        trainer.add_callback(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(logging_dir))))


def _precision_arguments(precision: str) -> dict:
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("precision='fp16' needs a CUDA GPU; on CPU use 'fp32' or 'bf16'")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16", "use_cpu": not torch.cuda.is_available()}


def _default_collator(tokenizer):
    try:
        from samora.data import MultiTaskCollator
    except ImportError as err:
        raise ValueError(
            "no data_collator given and samora.data.MultiTaskCollator is not available; pass "
            "data_collator=... (it must pad input_ids/attention_mask/labels and carry task_ids)"
        ) from err
    return MultiTaskCollator(tokenizer)
