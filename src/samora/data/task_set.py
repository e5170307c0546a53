"""A run's tasks, resolved once: one ordered :class:`TaskSet` (name -> id, definition, data hash) that
training, evaluation, analysis, ``compare``, ``export`` and the lm-eval model all receive.

``data.tasks`` lists, side by side (order = task ids):

- built-in task names, aliases and benchmark names (``boolq``, ``glue``);
- paths of YAML files (ending ``.yaml``/``.yml``): an lm-eval task YAML (one task), an lm-eval
  ``group`` YAML (its ``task:`` list), or a multi-task file spec (``task_column``: one task per
  distinct value; :mod:`samora.data.multitask_file`);
- with ``data.include_path=DIR`` (lm-eval's flag), the ``task:`` name of any task YAML under DIR,
  a ``group:`` name, or a ``tag:`` (every task YAML under DIR carrying it, in file-name order).

Users' tasks are registered (:func:`samora.data.tasks.register_task`) so that every later lookup by
name finds them; two tasks with one name, or a name of a built-in task, are refused. Each user's
task is read and rendered whole when the set is resolved with ``check=True`` (before any model
loads): a bad file stops the run with one line naming the file, the task and the key.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samora.data.multitask_file import is_multitask_spec, multitask_tasks
from samora.data.own_loader import TaskFileError
from samora.data.task_yaml import read_yaml, yaml_task
from samora.data.tasks import Task, get_task, register_task, resolve_split, resolve_tasks

logger = logging.getLogger(__name__)
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class TaskSet:
    """The run's tasks in id order: ``tasks[i]`` has task id ``i`` in the adapter."""

    tasks: tuple[Task, ...]

    @property
    def names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.tasks)

    def id_of(self, name: str) -> int:
        return self.names.index(get_task(name).name)

    def own(self) -> list[Task]:
        return [task for task in self.tasks if not task.is_builtin]

    def check(self, splits: list[str]) -> None:
        """Read and render every user's task's ``splits`` (``"eval"``: its evaluation split)."""
        for task in self.own():
            task.loader.check(list(dict.fromkeys(resolve_split(task, split) for split in splits)))

    def record(self) -> dict[str, Any]:
        """JSON-able: per task its id, benchmark, output type and, for a user's task, the file that
        defines it, its definition and the sha256 of its definition and data files."""
        entries = {}
        for task_id, task in enumerate(self.tasks):
            entry = {"id": task_id, "benchmark": task.benchmark, "output_type": task.output_type}
            if not task.is_builtin:
                entry |= {
                    "file": task.loader.origin,
                    "definition": task.loader.definition,
                    "data_hash": task.loader.data_hash(),
                }
            entries[task.name] = entry
        return entries

    def changed_since(self, recorded: dict[str, Any]) -> list[str]:
        """One line per user's task whose definition or data differ from ``recorded`` (a :meth:`record`)."""
        lines = []
        for task in self.own():
            before = (recorded.get(task.name) or {}).get("data_hash")
            if before is not None and before != task.loader.data_hash():
                lines.append(f"task {task.name!r} ({task.loader.origin}): its definition or data files changed")
        return lines


def resolve_task_set(spec: Any, include_path: str | os.PathLike | None = None, check_splits=None) -> TaskSet:
    """The :class:`TaskSet` of ``spec`` (see the module docstring); with ``check_splits`` (e.g.
    ``["train", "eval"]``) every user's task's splits are read and rendered now."""
    items = [p.strip() for p in spec.split(",") if p.strip()] if isinstance(spec, str) else list(spec or [])
    if not items:
        resolve_tasks(items)  # its "No tasks given" error, which lists the valid names
    index = IncludeIndex(Path(include_path)) if include_path else None
    tasks: list[Task] = []
    for item in items:
        tasks.extend(_expand(item, index))
    _refuse_duplicates(tasks)
    for task in tasks:
        if not task.is_builtin:
            register_task(task, replace=True)
    task_set = TaskSet(tuple(tasks))
    if check_splits:
        task_set.check(check_splits)
    return task_set


def _expand(item: Any, index: IncludeIndex | None) -> list[Task]:
    if isinstance(item, Task):
        return [item]
    text = str(item)
    if text.endswith(YAML_SUFFIXES) or Path(text).is_file():
        return tasks_of_file(Path(text), index)
    if index is not None and index.has(text):
        return index.tasks(text)
    return [get_task(name) for name in resolve_tasks(text)]


def tasks_of_file(path: Path, index: IncludeIndex | None = None) -> list[Task]:
    """The tasks one YAML file defines: a task, a group's tasks, or a multi-task file's tasks."""
    values = read_yaml(path)
    if "group" in values:
        return _group_tasks(path, values, index)
    if is_multitask_spec(values):
        return multitask_tasks(path, values)
    return [yaml_task(path, values)]


def _group_tasks(path: Path, values: dict[str, Any], index: IncludeIndex | None) -> list[Task]:
    """A ``group`` YAML's ``task:`` entries: names (under the include path, or built-in), YAML paths
    relative to it, or inline task definitions."""
    members = values.get("task")
    if not isinstance(members, list) or not members:
        raise TaskFileError(path, values.get("group"), "task", "a group must list its tasks")
    tasks: list[Task] = []
    for member in members:
        if isinstance(member, dict):
            tasks.append(yaml_task(path, member))
        elif str(member).endswith(YAML_SUFFIXES):
            tasks.extend(tasks_of_file(path.parent / str(member), index))
        elif index is not None and index.has(str(member)):
            tasks.extend(index.tasks(str(member)))
        else:
            try:
                tasks.extend(get_task(name) for name in resolve_tasks(str(member)))
            except ValueError:
                raise TaskFileError(
                    path,
                    values.get("group"),
                    "task",
                    f"{member!r} is neither a known task nor a YAML under data.include_path",
                ) from None
    return tasks


def _refuse_duplicates(tasks: list[Task]) -> None:
    seen: dict[str, Task] = {}
    for task in tasks:
        if task.name in seen:
            where = [t.loader.origin if t.loader else "built-in" for t in (seen[task.name], task)]
            raise ValueError(
                f"two tasks are named {task.name!r} ({where[0]} and {where[1]}); each task may appear once "
                "so that its task id is unambiguous: rename one (its `task:` key or task column value)"
            )
        seen[task.name] = task


class IncludeIndex:
    """The task, group and tag names of the YAML files under a folder (lm-eval's ``--include_path``)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise TaskFileError(root, None, "data.include_path", "is not a folder")
        self.files: dict[str, Path] = {}
        self.tags: dict[str, list[Path]] = {}
        for path in sorted(p for suffix in YAML_SUFFIXES for p in root.rglob(f"*{suffix}")):
            values = read_yaml(path)
            name = values.get("group") or values.get("task")
            if isinstance(name, str):
                if name in self.files:
                    raise TaskFileError(path, name, "task", f"{self.files[name]} defines {name!r} too; rename one")
                self.files[name] = path
            tags = values.get("tag") or []
            for tag in [tags] if isinstance(tags, str) else tags:
                self.tags.setdefault(str(tag), []).append(path)

    def has(self, name: str) -> bool:
        return name in self.files or name in self.tags

    def tasks(self, name: str) -> list[Task]:
        paths = [self.files[name]] if name in self.files else self.tags[name]
        return [task for path in paths for task in tasks_of_file(path, self)]
