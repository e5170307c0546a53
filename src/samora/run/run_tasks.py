"""The run's tasks as every command receives them: resolved once into a
:class:`~samora.data.task_set.TaskSet`, their data checked before any model loads, recorded in the run
folder (``tasks.json``: each user's task's definition and data hash) and compared with that record
later; and ``data.template: chat``, the tokenizer's chat template around every task's prompts."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from samora.files import write_text_atomic
from samora.run.config_checks import CHAT_TEMPLATE, resolve_config_tasks
from samora.run.run_config import ConfigError, RunConfig

logger = logging.getLogger(__name__)


def check_task_data(config: RunConfig, tasks, splits: list[str]) -> None:
    """Refuse, before any model loads, when no source (``data.source``) holds a split of a requested
    built-in task (one line per missing task and split, with what was tried and how to provide it),
    or when a user's task's split cannot be read and rendered whole (one line naming the file, the
    task and the key)."""
    from samora.data.sources import DataSourceError, resolve_source
    from samora.data.tasks import get_task, resolve_split

    missing = []
    for task in map(get_task, tasks):
        try:
            task_splits = list(dict.fromkeys(resolve_split(task, split) for split in splits))
            if not task.is_builtin:
                task.loader.check(task_splits)
                continue
        except ValueError as err:
            raise ConfigError(f"data.tasks: {err}") from None
        for split in task_splits:
            try:
                resolve_source(task, split, config.data.source)
            except (DataSourceError, FileNotFoundError) as err:  # or a local path without the task's file
                missing.append(f"  {task.name} ({split} split): {err}")
    if missing:
        raise ConfigError(
            f"no data for {len(missing)} requested task split(s) with data.source="
            f"{config.data.source!r}:\n"
            + "\n".join(missing)
            + "\nFix data.source, or leave those tasks out of data.tasks"
        )


def resolve_run_tasks(config: RunConfig):
    """The run's tasks, resolved once (:class:`~samora.data.task_set.TaskSet`: names in task-id order,
    each task's definition and data hash); users' tasks are registered by name from here on."""
    return resolve_config_tasks(config)


def record_tasks(task_set, folder: Path) -> None:
    """``folder/tasks.json``: each task's id, and for a user's task its file, definition and data hash
    (``samora eval --adapter RUN`` warns when they have changed since)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "tasks.json", json.dumps(task_set.record(), indent=2, default=str))


def warn_if_tasks_changed(task_set, adapter_dir: str) -> None:
    """Warn, one line per task, when a user's task's definition or data differ from those the run
    in (or above) ``adapter_dir`` recorded in its ``tasks.json``."""
    for folder in (Path(adapter_dir), Path(adapter_dir).parent):
        if (folder / "tasks.json").is_file():
            recorded = json.loads((folder / "tasks.json").read_text())
            for line in task_set.changed_since(recorded):
                logger.warning("%s since the run in %s was trained; its scores may not be comparable", line, folder)
            return


def chat_options(config: RunConfig) -> dict[str, Any]:
    """``data.template: chat``: score inside the tokenizer's chat template, with ``data.system_prompt``."""
    if config.data.template != CHAT_TEMPLATE:
        return {}
    return {"chat_template": True, "system_prompt": config.data.system_prompt}


def chat_format(config: RunConfig, tokenizer):
    """The :class:`~samora.data.chat.ChatFormat` training texts are written in (``data.template: chat``), or None."""
    if config.data.template != CHAT_TEMPLATE:
        return None
    from samora.data.chat import ChatFormat

    return ChatFormat(tokenizer, config.data.system_prompt)
