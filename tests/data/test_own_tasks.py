"""Users' tasks: lm-eval task YAMLs, group/tag YAMLs, one-file multi-task specs, the open registry and
the run's resolved task set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from samora.data import build_training_stream, get_task, load_examples, resolve_tasks
from samora.data.task_set import resolve_task_set
from samora.data.tasks import TASKS
from tests.helpers import ROOT

EXAMPLES = ROOT / "examples" / "own-tasks"


def write_task(folder: Path, name: str = "tickets", rows: str | None = None, **keys) -> Path:
    """A multiple-choice task YAML on a two-split CSV in ``folder`` (``keys`` add or replace YAML keys;
    a key set to None is removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.csv").write_text(rows or "text,label\nmy card was charged twice,0\nparcel is late,1\n")
    values = {
        "task": name,
        "dataset_path": "csv",
        "dataset_kwargs": {"data_files": {"train": f"{name}.csv", "test": f"{name}.csv"}},
        "training_split": "train",
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Ticket: {{text}}\nTeam:",
        "doc_to_choice": ["billing", "shipping"],
        "doc_to_target": "label",
        **keys,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in values.items() if v is not None}, sort_keys=False))
    return path


def test_a_task_yaml_renders_its_rows_into_the_example_columns(tmp_path):
    path = write_task(tmp_path)
    task_set = resolve_task_set([str(path)])
    examples = load_examples("tickets", "eval")
    assert task_set.names == ["tickets"] and get_task("tickets").output_type == "multiple_choice"
    assert examples[1] == {
        "task": "tickets",
        "id": "1",
        "prompt": "Ticket: parcel is late\nTeam:",
        "choices": [" billing", " shipping"],
        "choice_prompts": ["Ticket: parcel is late\nTeam:"] * 2,
        "gold": 1,
        "target": " shipping",
        "answer_labels": [],
    }


@pytest.mark.parametrize(
    "target,gold",
    [("{{label}}", 1), ("shipping", 1), (0, 0), ("{{ 'shipping' }}", 1)],
)
def test_a_target_is_an_index_into_the_choices_or_a_choice(tmp_path, target, gold):
    write_task(tmp_path, doc_to_target=target)
    resolve_task_set([str(tmp_path / "tickets.yaml")])
    assert load_examples("tickets", "test")["gold"][1] == gold


def test_generate_until_examples_carry_the_gold_text(tmp_path):
    path = write_task(
        tmp_path, output_type="generate_until", doc_to_choice=None, doc_to_target="{{text | upper}}", metric_list=None
    )
    task = resolve_task_set([str(path)]).tasks[0]
    example = load_examples(task, "test")[0]
    assert (example["choices"], example["gold"], example["target"]) == ([], -1, "MY CARD WAS CHARGED TWICE")
    assert task.metric_list == ({"metric": "exact_match"},)
    assert task.generation_kwargs == {"until": ["\n\n"], "do_sample": False}  # lm-eval's default


def test_task_names_and_yaml_paths_side_by_side_keep_their_order_as_task_ids(tmp_path):
    path = write_task(tmp_path)
    task_set = resolve_task_set(["boolq", str(path), "arc_easy"])
    assert task_set.names == ["boolq", "tickets", "arc_easy"] and task_set.id_of("tickets") == 1
    assert resolve_tasks(task_set) == task_set.names
    assert get_task("boolq") is TASKS["boolq"] and TASKS["boolq"].task_id == 5  # built-ins unchanged
    record = task_set.record()
    assert record["tickets"]["file"] == str(path) and len(record["tickets"]["data_hash"]) == 64
    assert "file" not in record["boolq"] and record["arc_easy"]["id"] == 2


def test_a_changed_data_file_is_noticed_against_the_recorded_hash(tmp_path):
    path = write_task(tmp_path)
    recorded = resolve_task_set([str(path)]).record()
    assert resolve_task_set([str(path)]).changed_since(recorded) == []
    (tmp_path / "tickets.csv").write_text("text,label\nsomething else,0\n")
    changed = resolve_task_set([str(path)]).changed_since(recorded)
    assert len(changed) == 1 and "tickets" in changed[0] and str(path) in changed[0]


def test_include_path_finds_tasks_groups_and_tags_by_name(tmp_path):
    write_task(tmp_path / "tasks", "tickets", tag="support")
    write_task(tmp_path / "tasks", "refunds", tag=["support"])
    (tmp_path / "tasks" / "all.yaml").write_text(yaml.safe_dump({"group": "everything", "task": ["refunds", "piqa"]}))
    include = tmp_path / "tasks"
    assert resolve_task_set(["tickets"], include).names == ["tickets"]
    assert resolve_task_set(["support"], include).names == ["refunds", "tickets"]  # file-name order
    assert resolve_task_set(["everything", "boolq"], include).names == ["refunds", "piqa", "boolq"]
    assert resolve_task_set([str(include / "all.yaml")], include).names == ["refunds", "piqa"]


def test_an_included_base_yaml_is_merged_under_the_file(tmp_path):
    write_task(tmp_path, "base")
    (tmp_path / "child.yaml").write_text("include: base.yaml\ntask: child\ndoc_to_text: 'T: {{text}}'\n")
    task = resolve_task_set([str(tmp_path / "child.yaml")]).tasks[0]
    assert task.name == "child" and load_examples(task, "test")["prompt"][0] == "T: my card was charged twice"


def test_the_example_yamls_render_as_lm_eval_renders_them(monkeypatch):
    """The same YAML through lm-eval's ConfigurableTask: the same prompts, continuations and golds."""
    task_module = pytest.importorskip("lm_eval.api.task")
    monkeypatch.chdir(EXAMPLES)  # lm-eval reads data_files relative to the working directory
    for name in ("copa.yaml", "sciq_answer.yaml"):
        lm_task = task_module.ConfigurableTask(config=yaml.safe_load((EXAMPLES / name).read_text()))
        ours = resolve_task_set([name]).tasks[0]
        examples = load_examples(ours, "test")
        for doc, example in zip(lm_task.test_docs(), examples, strict=True):
            context = lm_task.doc_to_text(doc)
            requests = lm_task.construct_requests(doc, context)  # one Instance for generate_until
            arguments = [r.arguments for r in (requests if isinstance(requests, list) else [requests])]
            if ours.output_type == "multiple_choice":
                assert arguments == list(zip(example["choice_prompts"], example["choices"]))
                assert lm_task.doc_to_target(doc) == example["gold"]
            else:
                assert arguments[0][0] == example["prompt"] and arguments[0][1]["until"] == ["\n"]
                assert lm_task.doc_to_target(doc) == example["target"]


def test_one_file_holds_many_tasks_with_a_seeded_disjoint_held_out_part(tmp_path):
    task_set = resolve_task_set([str(EXAMPLES / "support.yaml"), "boolq"])
    assert task_set.names == ["science", "color", "boolq"]
    science, color = task_set.tasks[:2]
    assert (science.output_type, color.output_type) == ("multiple_choice", "generate_until")
    for task in (science, color):
        train, test = load_examples(task, "train"), load_examples(task, "test")
        assert not set(train["id"]) & set(test["id"]) and len(test) == round(0.25 * (len(train) + len(test)))
    again = resolve_task_set([str(EXAMPLES / "support.yaml")])
    assert load_examples("color", "test")["id"] == list(load_examples(again.tasks[1], "test")["id"])


def test_integer_task_ids_take_their_names_and_a_named_split_is_held_out(tmp_path):
    rows = [{"task_id": i % 2, "q": f"q{i}", "a": f"a{i}"} for i in range(6)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    spec = {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"train": "train.jsonl", "test": "test.jsonl"}},
        "task_column": "task_id",
        "task_names": ["first", "second"],
        "columns": {"prompt": "q", "response": "a"},
        "test_split": "test",
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    task_set = resolve_task_set([str(tmp_path / "spec.yaml")])
    assert task_set.names == ["first", "second"]
    assert load_examples("second", "test")["target"] == ["a1"] and len(load_examples("first", "train")) == 3


def test_sharegpt_messages_and_a_system_column_make_the_prompt(tmp_path):
    conversation = [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]
    rows = [{"kind": k, "conversations": conversation, "sys": "Be brief."} for k in ("a", "a", "b", "b")]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": "chat.jsonl"},
        "task_column": "kind",
        "columns": {"messages": "conversations", "system": "sys"},
        "eval_fraction": 0.5,
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    resolve_task_set([str(tmp_path / "spec.yaml")])
    example = load_examples("a", "test")[0]
    assert (example["prompt"], example["target"]) == ("Be brief.\n\nHi?", "Hello.")


def test_the_training_stream_mixes_own_and_built_in_tasks_with_their_task_ids(tmp_path, smollm2_tokenizer):
    task_set = resolve_task_set([str(EXAMPLES / "sciq_answer.yaml"), str(EXAMPLES / "copa.yaml")])
    stream = build_training_stream(smollm2_tokenizer, task_set, per_task_cap=5, max_length=64)
    assert sorted(stream["task_ids"]) == [0] * 5 + [1] * 5
    report = json.loads(stream.info.description)
    assert report["tasks"] == ["sciq_answer", "copa_own"] and report["available"] == [150, 120]
    answers = [
        smollm2_tokenizer.decode([t for t in row["labels"] if t >= 0]) for row in stream if row["task_ids"] == 0
    ]
    assert all(answer.startswith(" ") for answer in answers)  # free text trained after target_delimiter
