"""One file, many tasks: a JSON/JSONL/CSV/Parquet file whose rows carry a task column, declared by a
small YAML in the spirit of LLaMA-Factory's ``dataset_info.json`` entry::

    dataset_path: json               # json (also JSONL) / csv / parquet
    dataset_kwargs: {data_files: support.jsonl}   # relative to this YAML; or {train: ..., test: ...}
    task_column: task                # a task name per row, or an integer task id
    task_names: [billing, refunds]   # optional: the names of integer task ids, in id order
    columns:                         # LLaMA-Factory's vocabulary -> this file's column names
      prompt: instruction            # the instruction (required unless messages)
      query: input                   # optional, appended to the prompt after a newline
      response: output               # the answer: free text, or the gold choice (text or index)
      system: system                 # optional, before the prompt and a blank line
      choices: options               # optional (samora's): rows with choices score by log-likelihood
      messages: conversations        # instead of prompt/query/response (sharegpt): the last
                                     # assistant turn is the response, the turns before it the prompt
    test_split: test                 # a split of data_files held out for evaluation, or:
    eval_fraction: 0.2               # a seeded random fraction of each task's rows (no row in both)
    seed: 0
    target_delimiter: " "            # between the prompt and the response or each choice
    metric_list: [{metric: exact_match}]          # for the tasks scored by generation
    generation_kwargs: {until: ["\\n"], max_gen_toks: 32}

Each distinct value of the task column is a task (its id in a run: its position in ``data.tasks``).
A task's rows either all have choices (``multiple_choice``, scored with ``acc``) or none do
(``generate_until``, scored by ``metric_list``, default ``exact_match``).
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from samora.data.doc_template import RenderError
from samora.data.own_loader import FILE_FORMATS, OwnTaskLoader, TaskFileError, read_rows, resolve_data_files
from samora.data.tasks import Task

COLUMN_ROLES = ("prompt", "query", "response", "system", "choices", "messages")
KEYS = (
    *("dataset_path", "dataset_kwargs", "task_column", "task_names", "columns", "training_split"),
    *("validation_split", "test_split", "eval_fraction", "seed", "target_delimiter", "metric_list"),
    *("generation_kwargs", "filter_list", "description"),
)
_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}


def is_multitask_spec(values: Mapping[str, Any]) -> bool:
    return "task_column" in values


def multitask_tasks(path: str | Path, values: dict[str, Any]) -> list[Task]:
    """The tasks of a multi-task file spec, in the order their values first appear in the file."""
    path = Path(path)
    _check_keys(path, values)
    columns = _columns(path, values)
    rows = _read(path, values)
    train_key, held_out_key = _split_keys(path, values, rows)
    column = values["task_column"]
    by_task = _rows_by_task(path, values, rows, column)
    if len(by_task) < 2:
        raise TaskFileError(
            path,
            None,
            "task_column",
            f"column {column!r} holds one value {list(by_task)}: a multi-task file needs two",
        )
    files = tuple(dict.fromkeys(f for names in values["_files"].values() for f in names))
    return [_task(path, values, name, columns, by_task[name], train_key, held_out_key, files) for name in by_task]


def _check_keys(path: Path, values: Mapping[str, Any]) -> None:
    for key in values:
        if key not in KEYS and not key.startswith("_"):
            close = difflib.get_close_matches(key, KEYS, n=1)
            raise TaskFileError(path, None, key, "unknown key" + (f"; did you mean {close[0]!r}?" if close else ""))
    if values.get("dataset_path") not in FILE_FORMATS:
        raise TaskFileError(
            path, None, "dataset_path", f"must be one of {FILE_FORMATS}, got {values.get('dataset_path')!r}"
        )
    fraction = values.get("eval_fraction")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction < 1):
        raise TaskFileError(path, None, "eval_fraction", f"must be a number in (0, 1), got {fraction!r}")


def _columns(path: Path, values: Mapping[str, Any]) -> dict[str, str]:
    columns = values.get("columns")
    if not isinstance(columns, Mapping):
        raise TaskFileError(path, None, "columns", f"must map {COLUMN_ROLES} to column names, got {columns!r}")
    for role in columns:
        if role not in COLUMN_ROLES:
            raise TaskFileError(path, None, f"columns.{role}", f"unknown role; the roles are {COLUMN_ROLES}")
    needed = ("messages",) if "messages" in columns else ("prompt", "response")
    for role in needed:
        if role not in columns:
            raise TaskFileError(path, None, f"columns.{role}", "is required (the column holding it)")
    return {role: str(name) for role, name in columns.items()}


def _read(path: Path, values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    kwargs = dict(values.get("dataset_kwargs") or {})
    if "data_files" not in kwargs:
        raise TaskFileError(path, None, "dataset_kwargs.data_files", "is required (the file, relative to this YAML)")
    values["_files"] = resolve_data_files(path, None, kwargs.pop("data_files"), "dataset_kwargs.data_files")
    return read_rows(path, None, values["dataset_path"], values["_files"], "dataset_kwargs.data_files", **kwargs)


def _split_keys(path: Path, values: Mapping[str, Any], rows: Mapping[str, list]) -> tuple[str, str | None]:
    """The split trained on, and the held-out split (``None``: ``eval_fraction`` of the training rows)."""
    train = str(values.get("training_split", "train"))
    held_out_key = "test_split" if values.get("test_split") is not None else "validation_split"
    held_out = values.get(held_out_key)
    for key, name in (("training_split", train), (held_out_key, held_out)):
        if name is not None and str(name) not in rows:
            raise TaskFileError(path, None, key, f"no split {name!r}; data_files give {sorted(rows)}")
    if held_out is None and values.get("eval_fraction") is None:
        raise TaskFileError(path, None, "eval_fraction", "set eval_fraction or test_split (the rows evaluated)")
    if held_out is not None and values.get("eval_fraction") is not None:
        raise TaskFileError(path, None, "eval_fraction", f"give either eval_fraction or {held_out_key}, not both")
    return train, None if held_out is None else str(held_out)


def _rows_by_task(path: Path, values: Mapping[str, Any], rows: Mapping[str, list], column: str) -> dict[str, dict]:
    """task name -> split -> its rows (in file order)."""
    names = values.get("task_names")
    by_task: dict[str, dict[str, list]] = {}
    for split, split_rows in rows.items():
        for index, row in enumerate(split_rows):
            if column not in row:
                raise TaskFileError(path, None, "task_column", f"no column {column!r}; the columns are {sorted(row)}")
            value = row[column]
            if isinstance(value, int) and not isinstance(value, bool):
                if names is not None and not 0 <= value < len(names):
                    raise TaskFileError(
                        path, None, "task_names", f"row {index}: task id {value} has no name in {names}"
                    )
                value = names[value] if names is not None else f"task_{value}"
            if not isinstance(value, str) or not value.strip():
                raise TaskFileError(
                    path, None, "task_column", f"row {index}: task {value!r} is not a name or an int id"
                )
            by_task.setdefault(value, {}).setdefault(split, []).append({"id": f"{split}-{index}", **row})
    return by_task


def _task(
    path: Path,
    values: Mapping[str, Any],
    name: str,
    columns: dict[str, str],
    rows: dict[str, list],
    train_key: str,
    held_out_key: str | None,
    files: tuple[str, ...],
) -> Task:
    splits = _held_out(rows, train_key, held_out_key, values.get("eval_fraction"), int(values.get("seed", 0)))
    output_type = _output_type(path, name, columns, [r for split in splits.values() for r in split])
    delimiter = str(values.get("target_delimiter", " "))
    metric_list = [{"metric": "acc"}] if output_type == "multiple_choice" else list(values.get("metric_list") or [])
    metric_list = metric_list or [{"metric": "exact_match"}]
    generation = dict(values.get("generation_kwargs") or {"until": ["\n\n"], "do_sample": False})
    definition = {key: value for key, value in values.items() if not key.startswith("_")} | {"task_value": name}
    description = str(values.get("description") or "")
    loader = OwnTaskLoader(
        origin=str(path),
        task=name,
        documents=lambda split: splits.get(split, []),
        render=lambda doc: _render(doc, columns, delimiter, description),
        files=files,
        definition=definition,
        descriptions={s: f"{path.name}: rows of task {name!r} ({s})" for s in splits},
    )
    return Task(
        name=name,
        benchmark="own",
        aliases=(),
        splits=tuple(splits),
        eval_split="test",
        metrics=tuple(m["metric"] for m in metric_list),
        hub=(str(values["dataset_path"]), None),
        output_type=output_type,
        metric_list=tuple(metric_list),
        filter_list=tuple(values.get("filter_list") or ()),
        generation_kwargs=generation if output_type == "generate_until" else None,
        target_delimiter=delimiter,
        loader=loader,
    )


def _held_out(rows: dict[str, list], train_key: str, held_out_key: str | None, fraction, seed: int) -> dict:
    """``{"train": rows, "test": rows}``: the named held-out split, or a seeded ``fraction`` of the
    task's training rows (at least one row each side when there are two)."""
    train = rows.get(train_key, [])
    if held_out_key is not None:
        return {"train": train, "test": rows.get(held_out_key, [])}
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    count = min(max(1, round(fraction * len(train))), max(len(train) - 1, 0))
    held = set(order[:count])
    return {
        "train": [row for i, row in enumerate(train) if i not in held],
        "test": [row for i, row in enumerate(train) if i in held],
    }


def _output_type(path: Path, name: str, columns: dict[str, str], rows: list[dict]) -> str:
    if "choices" not in columns:
        return "generate_until"
    with_choices = {bool(row.get(columns["choices"])) for row in rows}
    if len(with_choices) > 1:
        raise TaskFileError(path, name, "columns.choices", "some rows of this task have choices and some do not")
    return "multiple_choice" if with_choices == {True} else "generate_until"


def _render(doc: Mapping[str, Any], columns: dict[str, str], delimiter: str, description: str) -> dict[str, Any]:
    if "messages" in columns:
        prompt, response = _conversation(_field(doc, columns["messages"], "columns.messages"))
    else:
        prompt = str(_field(doc, columns["prompt"], "columns.prompt"))
        query = doc.get(columns["query"]) if "query" in columns else None
        prompt = f"{prompt}\n{query}" if query else prompt
        response = _field(doc, columns["response"], "columns.response")
    system = doc.get(columns["system"]) if "system" in columns else None
    prompt = description + (f"{system}\n\n{prompt}" if system else prompt)
    choices = doc.get(columns["choices"]) if "choices" in columns else None
    if not choices:
        return {"prompt": prompt, "choices": [], "choice_prompts": [], "gold": -1, "target": str(response)}
    choices = [str(choice) for choice in choices]
    gold = _gold(response, choices)
    continuations = [delimiter + choice for choice in choices]
    return {
        "prompt": prompt,
        "choices": continuations,
        "choice_prompts": [prompt] * len(choices),
        "gold": gold,
        "target": continuations[gold],
    }


def _field(doc: Mapping[str, Any], column: str, key: str) -> Any:
    if doc.get(column) is None:
        raise RenderError(key, f"the row has no value in column {column!r}")
    return doc[column]


def _gold(response: Any, choices: list[str]) -> int:
    if isinstance(response, int) and not isinstance(response, bool):
        if not 0 <= response < len(choices):
            raise RenderError("columns.response", f"index {response} is outside the {len(choices)} choices")
        return response
    if str(response) not in choices:
        raise RenderError("columns.response", f"{response!r} is not one of the choices {choices}")
    return choices.index(str(response))


def _conversation(messages: Any) -> tuple[str, str]:
    """A sharegpt conversation: the turns before the last assistant turn (joined by blank lines), and it."""
    if not isinstance(messages, list) or not messages:
        raise RenderError("columns.messages", f"must be a list of turns, got {messages!r}")
    turns = [(_ROLES.get(str(t.get("role", t.get("from")))), t.get("content", t.get("value"))) for t in messages]
    if turns[-1][0] != "assistant" or any(role is None or text is None for role, text in turns):
        raise RenderError(
            "columns.messages", "turns need role/from and content/value; the last must be the assistant's"
        )
    return "\n\n".join(str(text) for _, text in turns[:-1]), str(turns[-1][1])
