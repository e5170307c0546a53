"""lm-evaluation-harness task YAML files as samora tasks.

A task YAML (lm-eval's format; the same file runs in ``lm_eval --include_path``)::

    task: tickets
    dataset_path: csv                  # json / csv / parquet with data_files, or a hub dataset id
    dataset_kwargs: {data_files: {train: tickets_train.csv, test: tickets_test.csv}}
    training_split: train
    test_split: test                   # evaluated on test_split, else validation_split
    output_type: multiple_choice       # or generate_until
    doc_to_text: "Ticket: {{text}}\\nTeam:"
    doc_to_choice: ["billing", "shipping", "technical"]
    doc_to_target: label               # a column, or Jinja; an int indexes the choices
    metric_list: [{metric: acc}]

``data_files`` are relative to the YAML file's folder (lm-eval 0.4.13 reads them relative to the
working directory, so run lm-eval from the YAML's folder for the same files). ``include:`` merges a
base YAML (relative to the file), as lm-eval does. A ``group`` YAML (``group: name``, ``task:
[...]``) names several tasks; a task's ``tag`` makes the tag name select every task carrying it (see
:mod:`samora.data.task_set`). Keys lm-eval knows but samora does not support are refused by name
(:data:`REFUSED_KEYS`), with the value under which they are harmless accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from samora.data.doc_template import DocTemplate, RenderError, check_template
from samora.data.own_loader import FILE_FORMATS, OwnTaskLoader, TaskFileError, read_rows, resolve_data_files
from samora.data.tasks import Task

OUTPUT_TYPES = ("multiple_choice", "generate_until")
SPLIT_KEYS = {"training_split": "train", "validation_split": "validation", "test_split": "test"}
SUPPORTED_KEYS = (
    *("task", "task_alias", "tag", "include", "dataset_path", "dataset_name", "dataset_kwargs", *SPLIT_KEYS),
    *("output_type", "doc_to_text", "doc_to_choice", "doc_to_target", "description", "target_delimiter"),
    *("fewshot_delimiter", "generation_kwargs", "metric_list", "filter_list", "metadata"),
)
# lm-eval keys samora does not support -> (the harmless values, what to do instead)
REFUSED_KEYS: dict[str, tuple[tuple, str]] = {
    "num_fewshot": ((0, None), "samora scores zero-shot; remove it or set 0"),
    "fewshot_split": ((None,), "samora scores zero-shot; remove it"),
    "fewshot_config": ((None,), "samora scores zero-shot; remove it"),
    "process_docs": ((None,), "Python functions are not run; write the documents as the task needs them"),
    "process_results": ((None,), "Python functions are not run; use metric_list and filter_list"),
    "use_prompt": ((None,), "promptsource prompts are not supported; write doc_to_text"),
    "doc_to_image": ((None,), "samora's tasks are text only"),
    "doc_to_audio": ((None,), "samora's tasks are text only"),
    "repeats": ((1, None), "each document is scored once"),
    "should_decontaminate": ((False, None), "decontamination is not supported"),
    "doc_to_decontamination_query": ((None,), "decontamination is not supported"),
    "gen_prefix": ((None,), "not supported; put it at the end of doc_to_text"),
    "custom_dataset": ((None,), "Python functions are not run; use dataset_path and data_files"),
    "unsafe_code": ((False, None), "samora runs no code from task files"),
}
MULTIPLE_CHOICE_METRICS = ("acc", "acc_norm", "mcc", "f1")


class FunctionTag(str):
    """A ``!function module.name`` value: kept so that it can be refused by its key."""


class _TaskYamlLoader(yaml.SafeLoader):
    pass


_TaskYamlLoader.add_constructor("!function", lambda loader, node: FunctionTag(loader.construct_scalar(node)))


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping of a task YAML, with its ``include`` (a path relative to it) merged underneath."""
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(path, None, "data.tasks", "no such task file")
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader)
    except UnicodeDecodeError as err:
        raise TaskFileError(path, None, "(file)", f"not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        raise TaskFileError(path, None, "(file)", f"not valid YAML: {err}".replace("\n", " ")) from None
    if not isinstance(values, dict):
        raise TaskFileError(path, None, "(file)", f"must hold a mapping of keys, got {type(values).__name__}")
    include = values.pop("include", None)
    if include is None:
        return values
    base = Path(str(include)) if Path(str(include)).is_absolute() else path.parent / str(include)
    if base.resolve() in _seen:
        raise TaskFileError(path, values.get("task"), "include", f"{include!r} includes itself")
    return {**read_yaml(base, (*_seen, path.resolve())), **values}


def check_keys(path: Path, values: dict[str, Any]) -> None:
    """Refuse unknown keys (with the closest known one) and unsupported lm-eval keys, by name."""
    import difflib

    name = values.get("task")
    for key, value in values.items():
        if isinstance(value, FunctionTag):
            raise TaskFileError(path, name, key, f"!function {value} is Python code, which samora does not run")
        if key in REFUSED_KEYS:
            harmless, instead = REFUSED_KEYS[key]
            if value not in harmless:
                raise TaskFileError(path, name, key, f"{value!r} is not supported by samora ({instead})")
        elif key not in SUPPORTED_KEYS:
            close = difflib.get_close_matches(key, [*SUPPORTED_KEYS, *REFUSED_KEYS], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the keys samora reads are {list(SUPPORTED_KEYS)}"
            raise TaskFileError(path, name, key, f"unknown key{hint}")


def yaml_task(path: str | Path, values: dict[str, Any] | None = None) -> Task:
    """The :class:`Task` a task YAML defines (checked keys; its documents are read on first use)."""
    path = Path(path)
    values = read_yaml(path) if values is None else values
    check_keys(path, values)
    name = values.get("task")
    if not isinstance(name, str) or not name.strip():
        raise TaskFileError(path, None, "task", f"must be the task's name (a string), got {name!r}")
    output_type = values.get("output_type", "generate_until")  # lm-eval's default
    if output_type not in OUTPUT_TYPES:
        raise TaskFileError(path, name, "output_type", f"must be one of {OUTPUT_TYPES}, got {output_type!r}")
    template = _doc_template(path, name, values, output_type)
    splits = _split_names(path, name, values)
    metric_list = _metric_list(path, name, values, output_type)
    documents, files, descriptions = _document_reader(path, name, values, splits)
    loader = OwnTaskLoader(
        origin=str(path),
        task=name,
        documents=documents,
        render=template.example,
        files=files,
        definition=values,
        descriptions=descriptions,
    )
    return Task(
        name=name,
        benchmark="own",
        aliases=(),
        splits=tuple(splits),
        eval_split="test" if "test" in splits else ("validation" if "validation" in splits else None),
        metrics=tuple(entry["metric"] for entry in metric_list if entry["metric"] != "acc_norm") or ("acc",),
        hub=(values["dataset_path"], values.get("dataset_name")),
        output_type=output_type,
        metric_list=tuple(metric_list),
        filter_list=tuple(values.get("filter_list") or ()),
        generation_kwargs=_generation_kwargs(values, output_type),
        target_delimiter=template.target_delimiter,
        loader=loader,
    )


def _doc_template(path: Path, name: str, values: dict[str, Any], output_type: str) -> DocTemplate:
    for key in ("doc_to_text", "doc_to_target") + (("doc_to_choice",) if output_type == "multiple_choice" else ()):
        if values.get(key) is None:
            raise TaskFileError(path, name, key, f"is required for output_type {output_type}")
    for key in ("doc_to_text", "doc_to_choice", "doc_to_target"):
        try:
            check_template(key, values.get(key))
        except RenderError as err:
            raise TaskFileError(path, name, key, str(err)) from None
    return DocTemplate(
        doc_to_text=values["doc_to_text"],
        doc_to_target=values["doc_to_target"],
        doc_to_choice=values.get("doc_to_choice"),
        description=str(values.get("description") or ""),
        target_delimiter=str(values.get("target_delimiter", " ")),
        output_type=output_type,
    )


def _split_names(path: Path, name: str, values: dict[str, Any]) -> dict[str, str]:
    """samora split (train / validation / test) -> the dataset's split name."""
    splits = {canonical: str(values[key]) for key, canonical in SPLIT_KEYS.items() if values.get(key) is not None}
    if not ({"validation", "test"} & set(splits)):
        raise TaskFileError(path, name, "test_split", "set test_split or validation_split (the split evaluated)")
    return splits


def _metric_list(path: Path, name: str, values: dict[str, Any], output_type: str) -> list[dict[str, Any]]:
    default = [{"metric": "acc"}, {"metric": "acc_norm"}] if output_type == "multiple_choice" else []
    metric_list = values.get("metric_list") or default or [{"metric": "exact_match"}]
    if not isinstance(metric_list, list) or not all(isinstance(m, dict) and "metric" in m for m in metric_list):
        raise TaskFileError(path, name, "metric_list", f"must be a list of {{metric: name, ...}}, got {metric_list!r}")
    if output_type == "multiple_choice":
        unknown = [m["metric"] for m in metric_list if m["metric"] not in MULTIPLE_CHOICE_METRICS]
        if unknown:
            raise TaskFileError(
                path, name, "metric_list", f"{unknown} cannot score multiple_choice; use {MULTIPLE_CHOICE_METRICS}"
            )
    return [dict(m) for m in metric_list]


def _generation_kwargs(values: dict[str, Any], output_type: str) -> dict[str, Any] | None:
    """lm-eval's: the YAML's, ``until`` defaulting to the few-shot delimiter; greedy when absent."""
    if output_type != "generate_until":
        return None
    delimiter = str(values.get("fewshot_delimiter", "\n\n"))
    kwargs = dict(values.get("generation_kwargs") or {"until": [delimiter], "do_sample": False})
    kwargs.setdefault("until", [delimiter])
    return kwargs


def _document_reader(path: Path, name: str, values: dict[str, Any], splits: dict[str, str]):
    """``(documents(split), files, descriptions)`` for the YAML's dataset."""
    dataset_path = values.get("dataset_path")
    if not isinstance(dataset_path, str):
        raise TaskFileError(
            path, name, "dataset_path", f"must be json, csv, parquet or a dataset id, got {dataset_path!r}"
        )
    kwargs = dict(values.get("dataset_kwargs") or {})
    files: dict[str, list[str]] = {}
    if dataset_path in FILE_FORMATS:
        if "data_files" not in kwargs:
            raise TaskFileError(
                path, name, "dataset_kwargs.data_files", f"is required with dataset_path {dataset_path}"
            )
        files = resolve_data_files(path, name, kwargs.pop("data_files"), "dataset_kwargs.data_files")
    elif values.get("dataset_name") is not None:
        kwargs["name"] = values["dataset_name"]
    read: dict[str, dict[str, list]] = {}

    def documents(split: str) -> list[dict[str, Any]]:
        if "rows" not in read:
            read["rows"] = _read_dataset(path, name, dataset_path, files, kwargs)
        wanted = splits[split]
        if wanted not in read["rows"]:
            key = next(k for k, v in SPLIT_KEYS.items() if v == split)
            raise TaskFileError(path, name, key, f"no split {wanted!r}; the data has {sorted(read['rows'])}")
        return read["rows"][wanted]

    listed = tuple(dict.fromkeys(f for names in files.values() for f in names))
    descriptions = {s: f"{path.name}: {dataset_path} split {d!r}" for s, d in splits.items()}
    return documents, listed, descriptions


def _read_dataset(path: Path, name: str, dataset_path: str, files: dict, kwargs: dict) -> dict[str, list]:
    if files:
        return read_rows(path, name, dataset_path, files, "dataset_kwargs.data_files", **kwargs)
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_path, **kwargs)
    except Exception as err:  # offline, unknown id ...: name the key
        raise TaskFileError(path, name, "dataset_path", f"{dataset_path!r} could not be loaded: {err}") from None
    return {split: loaded[split].to_list() for split in loaded}
