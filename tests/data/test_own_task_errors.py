"""Bad users' task files are caught before any model loads, with one line naming the file, the task
and the key; ``samora train`` then leaves no run folder behind."""

from __future__ import annotations

import json

import pytest
import yaml

from samora.cli import main
from samora.data.task_set import resolve_task_set
from tests.data.test_own_tasks import write_task
from tests.helpers import run_overrides


def _misspelt_key(folder):
    return write_task(folder, doc_to_txt="{{text}}"), "doc_to_txt", "did you mean 'doc_to_text'"


def _missing_file(folder):
    path = write_task(folder)
    (folder / "tickets.csv").unlink()
    return path, "dataset_kwargs.data_files", "does not exist"


def _missing_split(folder):
    return write_task(folder, test_split="dev"), "test_split", "no split 'dev'"


def _jinja_error(folder):
    return write_task(folder, doc_to_text="{{ text "), "doc_to_text", "not valid Jinja"


def _undefined_field(folder):
    return write_task(folder, doc_to_text="{{ subject }}"), "doc_to_text", "'subject' is undefined"


def _index_outside_choices(folder):
    return write_task(folder, rows="text,label\na,0\nb,7\n"), "doc_to_target", "index 7 is outside the 2 choices"


def _empty_split(folder):
    return write_task(folder, rows="text,label\n"), "dataset_kwargs.data_files", "holds no rows"


def _shadows_built_in(folder):
    return write_task(folder, "boolq"), "task", "name of a built-in task"


def _not_utf8(folder):
    path = write_task(folder)
    (folder / "tickets.csv").write_bytes("text,label\ncaf\xe9,0\n".encode("latin-1"))
    return path, "dataset_kwargs.data_files", "not UTF-8"


def _few_shot(folder):
    return write_task(folder, num_fewshot=5), "num_fewshot", "not supported by samora"


def _python_function(folder):
    path = write_task(folder)
    path.write_text(path.read_text() + "process_docs: !function utils.process\n")
    return path, "process_docs", "Python code"


def _one_task_in_the_task_column(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.jsonl").write_text("".join(json.dumps({"t": "a", "q": "x", "r": "y"}) + "\n" for _ in range(4)))
    spec = {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": "rows.jsonl"},
        "task_column": "t",
        "columns": {"prompt": "q", "response": "r"},
        "eval_fraction": 0.5,
    }
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder / "spec.yaml", "task_column", "holds one value"


def _hub_dataset_offline(folder):
    path = write_task(folder, dataset_path="nobody/no-such-dataset", dataset_kwargs=None)
    return path, "dataset_path", "could not be loaded"


BAD_INPUTS = [
    _misspelt_key,
    _missing_file,
    _missing_split,
    _jinja_error,
    _undefined_field,
    _index_outside_choices,
    _empty_split,
    _shadows_built_in,
    _not_utf8,
    _few_shot,
    _python_function,
    _one_task_in_the_task_column,
    _hub_dataset_offline,
]


@pytest.mark.parametrize("bad_input", BAD_INPUTS, ids=lambda f: f.__name__.strip("_"))
def test_a_bad_task_file_is_one_line_naming_the_file_and_the_key(bad_input, tmp_path):
    path, key, expected = bad_input(tmp_path)
    with pytest.raises(ValueError) as caught:
        resolve_task_set([str(path)], check_splits=["train", "eval"])
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and f"{key}:" in message and expected in message


def test_an_undefined_field_shows_the_row(tmp_path):
    path, _, _ = _undefined_field(tmp_path)
    with pytest.raises(ValueError, match=r"task 'tickets': doc_to_text: row 0 \{\"text\": \"my card was charged"):
        resolve_task_set([str(path)], check_splits=["eval"])


def test_two_tasks_with_one_name_are_refused(tmp_path):
    first = write_task(tmp_path / "a")
    second = write_task(tmp_path / "b")
    with pytest.raises(ValueError, match="two tasks are named 'tickets'") as caught:
        resolve_task_set([str(first), str(second)])
    assert str(first) in str(caught.value) and str(second) in str(caught.value)


@pytest.mark.parametrize("bad_input", [_undefined_field, _misspelt_key, _empty_split, _one_task_in_the_task_column])
def test_train_refuses_a_bad_task_file_before_any_run_folder_is_written(bad_input, tmp_path, capsys):
    path, key, expected = bad_input(tmp_path / "tasks")
    run_dir = tmp_path / "run"
    code = main(["train", *run_overrides("no-model-is-loaded", run_dir), f"data.tasks=[boolq, {path}]"])
    error = capsys.readouterr().err
    assert code == 2 and str(path) in error and key in error and expected in error
    assert not run_dir.exists()
