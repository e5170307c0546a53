"""``train:`` keys that samora does not define but ``transformers.TrainingArguments`` does.

The ``train`` section of a run configuration holds samora's own keys (:class:`~samora.run.sections.TrainSection`)
and any other ``TrainingArguments`` field, which reaches :func:`samora.training.train` unchanged:

```yaml
train: {max_steps: 60, max_grad_norm: 0.5, optim: adafactor}
```

is stored as ``train.training_arguments: {max_grad_norm: 0.5, optim: adafactor}``, so the saved
``config.yaml`` loads back the same; ``samora train c.yaml train.max_grad_norm=0.5`` is an override
like any other. Names are checked against the fields of the installed transformers'
``TrainingArguments``, read from its source (:mod:`samora.training.transformers_source`: importing it
loads torch), so a misspelt key is refused at once; a field that samora sets under its own name is
refused with that name (``RENAMED``); values are type-checked by the field's annotation where it is a
plain type (:func:`samora.config.annotation_rule`), and a ``TrainingArguments`` is built from them
once before the model loads, so its own checks fail early too. Nothing here imports transformers
unless such keys exist and are well formed.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import os
import tempfile
from importlib.metadata import PackageNotFoundError
from typing import Any

from samora.config import ConfigError, annotation_rule
from samora.training.transformers_source import training_argument_hints

# TrainingArguments fields that samora sets from its own keys: refused, naming the key to use
RENAMED = {
    "output_dir": "output_dir",
    "bf16": "train.precision",
    "fp16": "train.precision",
    "activation_checkpointing": "train.gradient_checkpointing",
    "resume_from_checkpoint": "train.resume",
    "logging_nan_inf_filter": "train.on_nonfinite",
    "disable_tqdm": "the --verbose flag (the Trainer's progress bar; without it: one line per logging step)",
    "logging_dir": "nothing: TensorBoard writes into <run folder>/tensorboard",
}


def gather_training_arguments(values: dict[str, Any], section: type) -> dict[str, Any]:
    """``values`` with every ``train`` key that ``section`` does not define moved into
    ``train.training_arguments`` (a flat key wins over the same name already there)."""
    train = values.get("train")
    if not isinstance(train, dict):
        return values
    own = {f.name for f in dataclasses.fields(section)}
    extra = {key: value for key, value in train.items() if key not in own}
    if not extra:
        return values
    nested = train.get("training_arguments") or {}
    if not isinstance(nested, dict):
        raise ConfigError(f"train.training_arguments must be a mapping of TrainingArguments fields, got {nested!r}")
    kept = {key: value for key, value in train.items() if key in own}
    return {**values, "train": {**kept, "training_arguments": {**nested, **extra}}}


def check_training_arguments(arguments: dict[str, Any], section: type) -> dict[str, Any]:
    """The names of ``arguments`` checked (a ``TrainingArguments`` field samora does not set itself)
    and their values coerced where the field's type is plain (``3e-4`` -> float); returned. Reads
    transformers' source, never imports it."""
    if not arguments:
        return {}
    fields = training_argument_hints()
    own = sorted(f"train.{f.name}" for f in dataclasses.fields(section) if f.name != "training_arguments")
    for key in arguments:
        if key in RENAMED:
            raise ConfigError(f"train.{key}: samora sets TrainingArguments.{key} itself; use {RENAMED[key]} instead")
        if f"train.{key}" in own:
            raise ConfigError(f"train.training_arguments.{key}: {key} is samora's own key; set train.{key} instead")
    unknown = sorted(key for key in arguments if key not in fields)
    if unknown:
        close = {key: difflib.get_close_matches(f"train.{key}", own, n=1) for key in unknown}
        hints = "".join(f" (did you mean {match[0]}?)" for match in close.values() if match)
        raise ConfigError(
            f"unknown key(s) {[f'train.{k}' for k in unknown]}{hints}; valid keys here: {own}, or any "
            "field of transformers.TrainingArguments (its documentation lists them)"
        )
    rules = {key: annotation_rule(fields[key]) if fields[key] is not None else None for key in arguments}
    return {
        key: rule.coerce(f"train.{key}", arguments[key]) if rule else arguments[key] for key, rule in rules.items()
    }


def check_training_argument_values(arguments: dict[str, Any]) -> None:
    """Build one ``TrainingArguments`` from ``arguments`` (if any), so that its own checks (choices,
    combinations) fail before the model loads; its error becomes a :class:`ConfigError`."""
    if not arguments:
        return
    _check_own_rules(arguments)
    from transformers import TrainingArguments

    try:
        TrainingArguments(output_dir=tempfile.gettempdir(), report_to="none", **arguments)
    except (ImportError, PackageNotFoundError) as err:  # e.g. train.deepspeed without deepspeed installed
        named = ", ".join(f"train.{key}" for key in arguments)
        raise ConfigError(f"{named} needs a package that is not installed ({err}); pip install it") from None
    except (TypeError, ValueError, KeyError) as err:
        named = [f"train.{key}" for key in arguments if key in str(err)] or [f"train.{key}" for key in arguments]
        raise ConfigError(f"{', '.join(named)}: transformers.TrainingArguments refuses it: {err}") from None


def _check_own_rules(arguments: dict[str, Any]) -> None:
    """What ``TrainingArguments`` accepts but fails (or quietly means something else) later: a negative
    ``max_grad_norm`` (clipping off: that is 0), FSDP in a single process, an optimizer whose package
    is missing."""
    norm = arguments.get("max_grad_norm")
    if isinstance(norm, (int, float)) and norm < 0:
        raise ConfigError(f"train.max_grad_norm must be >= 0 (0 turns gradient clipping off), got {norm}")
    if arguments.get("fsdp") and int(os.environ.get("WORLD_SIZE", "1")) < 2:
        raise ConfigError(
            "train.fsdp needs a distributed launch (accelerate launch or torchrun with 2+ processes); "
            "this is a single process: leave train.fsdp unset"
        )
    optim = str(arguments.get("optim", ""))
    if ("bnb" in optim or "8bit" in optim) and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"train.optim={optim} needs bitsandbytes: pip install bitsandbytes (or another optim)")


def check_report_to(report_to: str | list[str]) -> None:
    """``train.report_to``: ``none``, ``all`` or integrations transformers knows and that are installed."""
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    if names in (["none"], ["all"], []):
        return
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    unknown = [name for name in names if name not in INTEGRATION_TO_CALLBACK]
    if unknown:
        raise ConfigError(
            f"train.report_to: unknown integration(s) {unknown}; transformers knows "
            f"{sorted(INTEGRATION_TO_CALLBACK)} (or none / all)"
        )
    missing = [name for name in names if name not in get_available_reporting_integrations()]
    if missing:
        raise ConfigError(
            f"train.report_to: {missing} not installed; pip install {' '.join(missing)} (or report_to=none)"
        )
