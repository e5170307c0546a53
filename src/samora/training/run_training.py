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

from samora.config import setting, validate_fields
from samora.inject import adapter_of
from samora.training.callbacks import StepLines
from samora.training.checkpoints import last_complete_checkpoint
from samora.training.settings import TrainingSettings
from samora.training.trainer import SamoraTrainer

PROGRESS = ("bar", "lines")


@dataclass
class TrainSettings(TrainingSettings):
    """How :func:`train` trains; every field is also a keyword argument of ``train``: the
    :class:`~samora.training.settings.TrainingSettings` a run configuration's ``train`` section holds too
    (same names, defaults and rules), and what a run folder decides for its own runs.

    Attributes:
        eval_steps: with an ``eval_dataset``, evaluate its loss this often (default: ``logging_steps``).
        resume: True resumes from the last complete checkpoint in ``output_dir``; a path resumes
            from that checkpoint.
        logging_dir: where TensorBoard writes its event files (default: the Trainer's,
            ``output_dir/runs/<date>_<host>``).
        progress: ``"bar"``: the Trainer's own console output (its tqdm bar with loss and tokens/s, or its
            print of every log entry with ``disable_tqdm``); ``"lines"``: no bar, one
            line per logging step (step, loss, lr, grad norm, tokens/s, ETA) on the ``samora`` logger
            at INFO (:class:`~samora.training.callbacks.StepLines`; what the ``samora`` CLI shows).
    """

    eval_steps: int | None = setting(None, gt=0)
    resume: bool | str = False
    logging_dir: str | os.PathLike | None = None
    progress: str = setting("bar", choices=PROGRESS)

    def __post_init__(self):
        validate_fields(self)  # every field's declared rule, as a method config checks its own


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
    settings: TrainSettings | None = None,
    eval_dataset=None,
    data_collator: Callable | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    **options,
) -> TrainResult:
    """Train the adapter of ``model`` with :class:`SamoraTrainer` and save it to ``output_dir``.

    Launch the calling script with ``torchrun`` or ``accelerate launch`` for data-parallel training
    (``per_device_train_batch_size`` is per device).

    Args:
        model: adapted by :func:`samora.get_model` (its adapter parameters are the trainable ones).
        tokenizer: saved next to each checkpoint; also builds the default collator.
        train_dataset: examples with ``input_ids``, ``attention_mask``, ``labels`` (-100 = ignored)
            and ``task_ids`` (e.g. ``samora.data.build_training_stream``).
        settings: how to train (:class:`TrainSettings`; default: its defaults, the SAMoRA scripts').
        eval_dataset: evaluate the loss on it every ``eval_steps``.
        data_collator: default ``samora.data.MultiTaskCollator(tokenizer)``.
        callbacks: further ``TrainerCallback`` objects.
        **options: any :class:`TrainSettings` field (``max_steps=100``, ``precision="bf16"``...; over
            ``settings``), and any other ``transformers.TrainingArguments`` field (``fsdp``,
            ``deepspeed``, ``max_grad_norm``, ``optim``...), which wins over what samora sets.
    """
    adapter_of(model)  # a clear error for a model without an adapter
    settings, training_arguments = _split_options(settings or TrainSettings(), options)
    if data_collator is None:
        data_collator = _default_collator(tokenizer)
    resumed_from = _checkpoint_to_resume(settings.resume, output_dir)
    options = _trainer_options(settings, output_dir, with_eval=eval_dataset is not None)
    trainer = SamoraTrainer(
        model=model,
        args=TrainingArguments(**(options | training_arguments)),  # explicit TrainingArguments fields win
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        processing_class=tokenizer,
        callbacks=list(callbacks),
        on_nonfinite=settings.on_nonfinite,
    )
    if settings.progress == "lines":  # neither the dict print of every log entry nor the bar (which also prints them)
        for console in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(console)
        trainer.add_callback(StepLines())
    if settings.logging_dir is not None:
        _point_tensorboard_at(trainer, settings.logging_dir)
    output = trainer.train(resume_from_checkpoint=resumed_from)
    trainer.save_model(str(output_dir))
    return _result(trainer, output, output_dir, resumed_from)


def _split_options(settings: TrainSettings, options: dict) -> tuple[TrainSettings, dict]:
    """``(settings with the TrainSettings fields of options, the other options)``."""
    own = {f.name for f in dataclasses.fields(TrainSettings)}
    chosen = {key: value for key, value in options.items() if key in own}
    others = {key: value for key, value in options.items() if key not in own}
    return (dataclasses.replace(settings, **chosen) if chosen else settings), others


def _trainer_options(settings: TrainSettings, output_dir, with_eval: bool) -> dict:
    """The ``TrainingArguments`` fields that ``settings`` sets, under this transformers version's names."""
    return {
        "output_dir": str(output_dir),
        "max_steps": settings.max_steps if settings.max_steps is not None else -1,
        "num_train_epochs": settings.num_train_epochs,
        "learning_rate": settings.learning_rate,
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "per_device_eval_batch_size": settings.per_device_train_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "weight_decay": settings.weight_decay,
        "lr_scheduler_type": settings.lr_scheduler_type,
        "optim": "adamw_torch",
        "seed": settings.seed,
        "logging_steps": settings.logging_steps,
        "save_strategy": "steps" if settings.save_steps else "no",
        "save_steps": settings.save_steps or 500,
        "save_total_limit": settings.save_total_limit,
        "eval_strategy": "steps" if with_eval else "no",
        "eval_steps": settings.eval_steps or settings.logging_steps,
        "report_to": settings.report_to,
        # skip: a skipped step's loss is left out of the mean
        "logging_nan_inf_filter": settings.on_nonfinite == "skip",
        **_version_arguments(settings.warmup_ratio, settings.gradient_checkpointing, settings.logging_dir),
        **_precision_arguments(settings.precision),
        **({"disable_tqdm": True} if settings.progress == "lines" else {}),
    }


def _result(trainer: SamoraTrainer, output, output_dir, resumed_from: str | None) -> TrainResult:
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
