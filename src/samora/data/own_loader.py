"""The loader of a user's task: read its documents from its files, render them into examples.

A user's :class:`~samora.data.tasks.Task` (from an lm-eval task YAML, :mod:`samora.data.task_yaml`,
or a multi-task file, :mod:`samora.data.multitask_file`) carries an :class:`OwnTaskLoader` as its
``loader``: per split, a function giving the split's documents (rows as dicts) and a function
rendering one document into the example columns of :func:`samora.data.load_examples`. Every error
is a :class:`TaskFileError`, one line naming the file, the task and the key (and the row when a
row is at fault), raised when the task is checked (:meth:`OwnTaskLoader.check`, before any model
loads), so that nothing is trained on or reported from a half-read file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samora.data.doc_template import RenderError

if TYPE_CHECKING:  # datasets is imported where rows are read: resolving a task by name needs none of it
    import datasets

TEXT_FORMATS = ("json", "csv")
FILE_FORMATS = ("json", "csv", "parquet")


class TaskFileError(ValueError):
    """A user's task file that cannot be used: ``<file>: task <name>: <key>: <what and how to fix>``."""

    def __init__(self, origin: str | Path, task: str | None, key: str, message: str) -> None:
        where = f"{origin}: " + (f"task {task!r}: " if task else "")
        super().__init__(f"{where}{key}: {message}")
        self.origin, self.task, self.key = str(origin), task, key


@dataclass(frozen=True)
class OwnTaskLoader:
    """How one user's task is read: ``documents(split)`` (the split's rows), ``render(doc)`` (one
    row's example columns, raising :class:`~samora.data.doc_template.RenderError`), the files read
    (hashed into :meth:`data_hash`), the task's definition as written (recorded in every run) and a
    description of each split's origin."""

    origin: str
    task: str
    documents: Callable[[str], list[dict[str, Any]]]
    render: Callable[[Mapping[str, Any]], dict[str, Any]]
    files: tuple[str, ...]
    definition: dict[str, Any]
    descriptions: Mapping[str, str]
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def describe(self, split: str) -> str:
        return self.descriptions.get(split, f"{self.origin} ({split})")

    def examples(self, split: str, limit: int | None = None, seed: int | None = None) -> datasets.Dataset:
        """The rendered examples of ``split`` (``limit``: the first ``limit``, or a seeded random
        ``limit`` with ``seed``, as :func:`samora.data.load_examples`)."""
        import datasets

        from samora.data.examples import EXAMPLE_FEATURES

        if split not in self._cache:
            rows = [self._example(index, doc) for index, doc in enumerate(self._documents(split))]
            self._cache[split] = datasets.Dataset.from_list(rows, features=EXAMPLE_FEATURES)
        examples = self._cache[split]
        if limit is not None:
            if limit < 1:
                raise ValueError(f"limit must be a positive number of examples, got {limit}.")
            if seed is not None:
                examples = examples.shuffle(seed=seed)
            examples = examples.select(range(min(limit, len(examples))))
        return examples

    def check(self, splits: list[str]) -> None:
        """Read and render every document of ``splits`` (a :class:`TaskFileError` on the first fault)."""
        for split in splits:
            self.examples(split)

    def data_hash(self) -> str:
        """sha256 over the task's definition and the bytes of every file it reads."""
        digest = hashlib.sha256(json.dumps(self.definition, sort_keys=True, default=str).encode())
        for name in self.files:
            digest.update(name.encode())
            with open(name, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    def _documents(self, split: str) -> list[dict[str, Any]]:
        documents = self.documents(split)
        if not documents:
            raise TaskFileError(self.origin, self.task, _split_key(split), f"the {split} split holds no rows")
        return documents

    def _example(self, index: int, doc: Mapping[str, Any]) -> dict[str, Any]:
        try:
            example = self.render(doc)
        except RenderError as err:
            raise TaskFileError(self.origin, self.task, err.key, f"row {index} {_short(doc)}: {err}") from None
        return {"task": self.task, "id": str(doc.get("id", index)), "answer_labels": [], **example}


def _split_key(split: str) -> str:
    return {"train": "training_split", "validation": "validation_split", "test": "test_split"}.get(split, split)


def _short(doc: Mapping[str, Any], width: int = 160) -> str:
    text = json.dumps(dict(doc), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def resolve_data_files(origin: Path, task: str | None, data_files: Any, key: str) -> dict[str, list[str]]:
    """``data_files`` (a path, a list, or split -> path(s)), each relative to the folder of
    ``origin``, as split -> existing absolute paths (a bare path or list is the ``train`` split)."""
    if isinstance(data_files, (str, list)):
        data_files = {"train": data_files}
    if not isinstance(data_files, Mapping) or not data_files:
        raise TaskFileError(
            origin, task, key, f"must be a file, a list of files or split: file(s), got {data_files!r}"
        )
    resolved: dict[str, list[str]] = {}
    for split, names in data_files.items():
        paths = []
        for name in [names] if isinstance(names, str) else list(names):
            path = Path(str(name)).expanduser()
            path = path if path.is_absolute() else origin.parent / path
            if not path.is_file():
                raise TaskFileError(origin, task, key, f"data file {str(name)!r} does not exist (looked for {path})")
            paths.append(str(path))
        resolved[str(split)] = paths
    return resolved


def check_utf8(origin: Path, task: str | None, files: list[str], key: str) -> None:
    """A :class:`TaskFileError` naming the first text file that is not UTF-8, and where."""
    for name in files:
        data = Path(name).read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[: err.start].count(b"\n") + 1
            raise TaskFileError(
                origin, task, key, f"{name} is not UTF-8 text (byte {err.start}, line {line}); save it as UTF-8"
            ) from None


def read_rows(
    origin: Path, task: str | None, dataset_path: str, files: dict[str, list[str]], key: str, **kwargs: Any
) -> dict[str, list[dict[str, Any]]]:
    """Every split of ``files`` as lists of rows, read with :func:`datasets.load_dataset`
    (``dataset_path`` one of json, csv, parquet)."""
    if dataset_path in TEXT_FORMATS:
        check_utf8(origin, task, [name for names in files.values() for name in names], key)
    return {
        split: _read_split(origin, task, dataset_path, split, paths, key, kwargs) for split, paths in files.items()
    }


def _read_split(
    origin: Path, task: str | None, dataset_path: str, split: str, names: list[str], key: str, kwargs: dict
) -> list[dict[str, Any]]:
    import datasets

    if all(Path(name).stat().st_size == 0 for name in names):
        raise TaskFileError(origin, task, key, f"split {split!r} ({', '.join(names)}) holds no rows")
    try:
        return datasets.load_dataset(dataset_path, data_files={split: names}, split=split, **kwargs).to_list()
    except Exception as err:  # a parse error of the format's reader: name the file, keep the reason
        if "corresponds to no data" in str(err):  # a header without rows
            raise TaskFileError(origin, task, key, f"split {split!r} ({', '.join(names)}) holds no rows") from None
        reason = str(err).replace("\n", " ")
        raise TaskFileError(origin, task, key, f"{dataset_path} files {names} could not be read: {reason}") from None
