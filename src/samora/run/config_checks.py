"""The run configuration's value checks that types cannot express: ranges, choices, the tasks and
templates against their registries, and a writable ``output_dir``. Each error names its key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from samora.run.coercion import ConfigError

if TYPE_CHECKING:
    from samora.run.run_config import DataSection, EvalSection, RunConfig, TrainSection

# (passes, key, what the key must be)
Check = tuple[bool, str, str]


def check_values(config: RunConfig) -> None:
    """Range and choice checks of every section, then the method's and the comparison's own."""
    from samora.run.passthrough import check_report_to, check_training_argument_values

    checks = [
        (
            config.model.dtype in ("auto", "float32", "bfloat16", "float16"),
            "model.dtype",
            "auto, float32, bfloat16 or float16",
        ),
        *_data_checks(config.data),
        *_train_checks(config.train),
        *_eval_checks(config.eval),
    ]
    for ok, key, expected in checks:
        if not ok:
            raise ConfigError(f"{key} must be {expected}")
    check_report_to(config.train.report_to)
    check_training_argument_values(config.train.training_arguments)
    config.adapter_config(["_validation_task"])  # the method's own field checks, with their messages
    if config.compare.methods:
        from samora.compare.spec import check_compare_section

        check_compare_section(config)


def _data_checks(data: DataSection) -> list[Check]:
    return [
        (data.sampling in ("proportional", "temperature"), "data.sampling", "proportional or temperature"),
        (data.max_length > 0, "data.max_length", "> 0"),
        (data.per_task_cap is None or data.per_task_cap > 0, "data.per_task_cap", "> 0 or null"),
        (data.temperature is None or data.temperature > 0, "data.temperature", "> 0 or null"),
        (
            data.sampling != "temperature" or data.temperature is not None,
            "data.temperature",
            "set (e.g. 2.0) when data.sampling is temperature",
        ),
        (
            data.sampling == "temperature" or data.temperature is None,
            "data.temperature",
            "null unless data.sampling is temperature",
        ),
    ]


def _train_checks(train: TrainSection) -> list[Check]:
    import torch
    from transformers.trainer_utils import SchedulerType

    from samora.training import NONFINITE_ACTIONS
    from samora.training.train import PRECISIONS

    schedulers = sorted(s.value for s in SchedulerType)
    return [
        (train.max_steps is None or train.max_steps > 0, "train.max_steps", "> 0 or null"),
        (train.epochs > 0, "train.epochs", "> 0"),
        (train.learning_rate > 0, "train.learning_rate", "> 0"),
        (train.batch_size > 0, "train.batch_size", "> 0"),
        (train.gradient_accumulation_steps > 0, "train.gradient_accumulation_steps", "> 0"),
        (0 <= train.warmup_ratio < 1, "train.warmup_ratio", "in [0, 1)"),
        (train.weight_decay >= 0, "train.weight_decay", ">= 0"),
        (train.lr_scheduler in schedulers, "train.lr_scheduler", f"one of {schedulers}"),
        (0 <= train.seed < 2**32, "train.seed", "in [0, 2**32)"),
        (train.logging_steps > 0, "train.logging_steps", "> 0"),
        (train.save_steps is None or train.save_steps > 0, "train.save_steps", "> 0 or null"),
        (train.on_nonfinite in NONFINITE_ACTIONS, "train.on_nonfinite", " or ".join(NONFINITE_ACTIONS)),
        (train.precision in PRECISIONS, "train.precision", " / ".join(PRECISIONS)),
        (
            train.precision != "fp16" or torch.cuda.is_available(),
            "train.precision",
            "fp32 or bf16 on a machine without a CUDA GPU (fp16 autocast needs one)",
        ),
        (train.save_total_limit is None or train.save_total_limit > 0, "train.save_total_limit", "> 0 or null"),
    ]


def _eval_checks(evaluation: EvalSection) -> list[Check]:
    return [
        (evaluation.protocol in ("loglik", "generate"), "eval.protocol", "loglik or generate"),
        (evaluation.limit is None or evaluation.limit > 0, "eval.limit", "> 0 or null"),
        (evaluation.batch_size > 0, "eval.batch_size", "> 0"),
        (evaluation.num_beams >= 1, "eval.num_beams", ">= 1"),
        (evaluation.max_new_tokens > 0, "eval.max_new_tokens", "> 0"),
    ]


def check_data(config: RunConfig) -> None:
    """Tasks, the evaluation split and the template, against their registries."""
    from samora.data import get_template, resolve_tasks
    from samora.data.tasks import resolve_split

    try:
        tasks = resolve_tasks(config.data.tasks)
    except ValueError as err:
        raise ConfigError(f"data.tasks: {err}") from None
    for key, check in (
        ("eval.split", lambda task: resolve_split(task, config.eval.split)),
        ("data.template", lambda task: get_template(config.data.template, task)),
    ):
        for task in tasks:
            try:
                check(task)
            except ValueError as err:
                raise ConfigError(f"{key}: {err}") from None


def check_output_dir(output_dir: str) -> None:
    """An ``output_dir`` that is a file, or under a folder this user cannot write, is refused up front."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output_dir {output_dir!r} is a file, not a folder; choose another output_dir")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"output_dir {output_dir!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"output_dir {output_dir!r} is not writable ({str(existing)!r} does not allow this "
            "user to write); choose another output_dir or fix its permissions"
        )
