"""The run configuration's value checks beyond types: the bounds and choices its sections declare
(:func:`samora.config.check_section`), the rules that join fields, the tasks and templates against their
registries, and a writable ``output_dir``. Each error names its key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samora.config import AdapterConfig, ConfigError, check_section, field_rules

if TYPE_CHECKING:
    from samora.run.sections import DataSection, RunConfig

# (passes, key, what the key must be)
Check = tuple[bool, str, str]


def check_plain_values(config: RunConfig) -> None:
    """The checks that need no library (torch, the Trainer, the method registry), run first so that
    a configuration error prints before any of them loads: each section's declared bounds and choices
    (the scheduler names read from transformers' source), the ``adapter`` keys every method shares, the
    rules joining data fields, ``model.name`` and ``output_dir``."""
    sections = {"model": config.model, "data": config.data, "train": config.train, "eval": config.eval}
    for name, section in sections.items():
        check_section(section, name + ".")
    check_shared_adapter_values(config.adapter)
    for ok, key, expected in _data_checks(config.data):
        if not ok:
            raise ConfigError(f"{key} must be {expected}")
    check_output_dir(config.output_dir)
    check_model_name(config.model.name)


def check_shared_adapter_values(adapter: dict[str, Any]) -> None:
    """The ``adapter`` keys that every method's config has from :class:`~samora.config.AdapterConfig`
    (``r``, ``dropout``...), against the rules declared there, which every method keeps
    (``tests/run/test_run_config_validation.py`` checks it): they are refused before the method
    registry, and torch with it, loads; the method's config checks the rest (and refuses ``adapter.tasks``,
    which data.tasks sets)."""
    rules = field_rules(AdapterConfig)
    for key in sorted(set(adapter) & set(rules) - {"tasks"}):
        problem = rules[key].violation(
            f"adapter.{key}", rules[key].coerce(f"adapter.{key}", adapter[key]), null="null"
        )
        if problem:
            raise ConfigError(problem)


def check_model_name(name: str | None) -> None:
    """A ``model.name`` written as a local path (``/``, ``.`` or ``~`` first) must be a folder."""
    if name and name.startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
        raise ConfigError(
            f"model.name {name!r} is not a folder; give a folder written by save_pretrained, a hub id, or "
            "smollm2-135m-instruct (the offline model)"
        )


def check_values(config: RunConfig) -> None:
    """The checks that read the installed libraries, after :func:`check_plain_values`: fp16's need of a
    GPU, the reporting integrations, a ``TrainingArguments`` built from the pass-through keys, and the
    method's own field checks. The ``compare`` section is :mod:`samora.compare`'s to check
    (:func:`samora.compare.spec.check_compare_section`)."""
    from samora.run.passthrough import check_report_to, check_training_argument_values

    if config.train.precision == "fp16":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "train.precision must be fp32 or bf16 on a machine without a CUDA GPU (fp16 autocast needs one)"
            )
    check_report_to(config.train.report_to)
    check_training_argument_values(config.train.training_arguments)
    config.adapter_config(["_validation_task"])  # the method's own field checks, with their messages


CHAT_TEMPLATE = "chat"


def prompt_template(config: RunConfig) -> str | None:
    """The template the tasks' prompts are rendered with before any chat template (``data.template:
    chat`` wraps each task's default)."""
    return None if config.data.template == CHAT_TEMPLATE else config.data.template


def _data_checks(data: DataSection) -> list[Check]:
    return [
        (
            data.system_prompt is None or data.template == CHAT_TEMPLATE,
            "data.system_prompt",
            "null unless data.template is chat (the system turn of the chat template)",
        ),
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


def check_data(config: RunConfig) -> None:
    """Tasks (built-in names, task YAMLs; users' tasks are registered here), the evaluation split and
    the template, against their registries."""
    from samora.data import get_template
    from samora.data.tasks import resolve_split

    tasks = resolve_config_tasks(config)
    for key, check in (
        ("eval.split", lambda task: resolve_split(task, config.eval.split)),
        ("data.template", lambda task: get_template(prompt_template(config), task)),
    ):
        for task in tasks.tasks:
            try:
                check(task)
            except ValueError as err:
                raise ConfigError(f"{key}: {err}") from None


def resolve_config_tasks(config: RunConfig, check_splits: list[str] | None = None):
    """The :class:`~samora.data.task_set.TaskSet` of ``data.tasks`` (with ``data.include_path``); with
    ``check_splits``, every user's task's splits are read and rendered now. Every fault is one
    :class:`ConfigError` line naming the file, the task and the key."""
    from samora.data.task_set import resolve_task_set

    try:
        return resolve_task_set(config.data.tasks, config.data.include_path, check_splits)
    except ValueError as err:  # TaskFileError names its file, task and key itself
        raise ConfigError(f"data.tasks: {err}") from None


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
