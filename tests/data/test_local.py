"""Local files: a GLUE folder in the standard TSV layout, and commonsense_170k-style JSON."""

import json

import pytest

from samora.data import DataSourceError, load_examples, load_records, resolve_source
from samora.data.templates import ALPACA_WRAPPER
from tests.helpers import SHARED_GLUE

MNLI_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
)


def _mnli_row(index, premise, hypothesis, label):
    return (
        f"{index}\t{index}1\t{index}1e\tfiction\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t"
        f"{premise}\t{hypothesis}\t{label}\t{label}"
    )


GLUE_FILES = {
    "CoLA/train.tsv": "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n"
    "gj04\t0\t*\tThe more books I ask to whom he will give, the more he reads.\n",
    "CoLA/dev.tsv": "gj04\t1\t\tThe cat sat.\n",
    "SST-2/train.tsv": 'sentence\tlabel\nhide new secretions \t0\na "charming" film \t1\n',
    "SST-2/dev.tsv": "sentence\tlabel\nit 's a charming journey . \t1\n",
    "MRPC/train.tsv": "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    "1\t702876\t702977\tAmrozi accused his brother .\tHe called him a liar .\n"
    "0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought it .\n",
    "MRPC/dev.tsv": '\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said " no " .\tHe refused .\n',
    "QQP/train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
    "0\t1\t2\tHow do I cook rice?\tWhat is the way to cook rice?\t1\n"
    "1\t3\t4\tWhy is the sky blue?\n"  # a malformed row, as QQP's train has
    "2\t5\t6\tWho won?\tWhat time is it?\t0\n",
    "QQP/dev.tsv": 'id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n7\t8\t9\tIs it "safe"?\tIs it safe?\t1\n',
    "MNLI/train.tsv": MNLI_HEADER + "\n" + _mnli_row(0, "A dog runs.", "An animal moves.", "entailment") + "\n",
    "MNLI/dev_matched.tsv": MNLI_HEADER
    + "\n"
    + _mnli_row(1, "It rains.", "It is dry.", "contradiction")
    + "\n"
    + _mnli_row(2, "He sings.", "He is happy.", "neutral")
    + "\n",
    "MNLI/dev_mismatched.tsv": MNLI_HEADER + "\n" + _mnli_row(3, "A man eats.", "Food.", "neutral") + "\n",
    "QNLI/train.tsv": "index\tquestion\tsentence\tlabel\n0\tWho ran?\tBob ran.\tentailment\n"
    "1\tWho sang?\tIt rained.\tnot_entailment\n",
    "QNLI/dev.tsv": "index\tquestion\tsentence\tlabel\n5\tWhen?\tAt noon.\tentailment\n",
    "RTE/train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tBob ran home.\tBob moved.\t"
    "entailment\n1\tBob sat.\tBob flew.\tnot_entailment\n",
    "RTE/dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA b.\tC d.\tnot_entailment\n",
}


@pytest.fixture
def glue_root(tmp_path):
    for name, text in GLUE_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    "task, split, expected",
    [
        (
            "cola",
            "train",
            [
                {"sentence": "The sailors rode the breeze clear of the rocks.", "label": 1},
                {"sentence": "The more books I ask to whom he will give, the more he reads.", "label": 0},
            ],
        ),
        (
            "sst2",
            "train",
            [{"sentence": "hide new secretions ", "label": 0}, {"sentence": 'a "charming" film ', "label": 1}],
        ),
        (
            "mrpc",
            "train",
            [
                {"sentence1": "Amrozi accused his brother .", "sentence2": "He called him a liar .", "label": 1},
                {"sentence1": "Yucaipa owned Dominick 's .", "sentence2": "Yucaipa bought it .", "label": 0},
            ],
        ),
        (
            "qqp",
            "train",
            [
                {"question1": "How do I cook rice?", "question2": "What is the way to cook rice?", "label": 1},
                {"question1": "Who won?", "question2": "What time is it?", "label": 0},
            ],
        ),
        ("qqp", "validation", [{"question1": 'Is it "safe"?', "question2": "Is it safe?", "label": 1}]),
        (
            "mnli",
            "validation_matched",
            [
                {"premise": "It rains.", "hypothesis": "It is dry.", "label": 2},
                {"premise": "He sings.", "hypothesis": "He is happy.", "label": 1},
            ],
        ),
        ("mnli", "validation_mismatched", [{"premise": "A man eats.", "hypothesis": "Food.", "label": 1}]),
        (
            "qnli",
            "train",
            [
                {"question": "Who ran?", "sentence": "Bob ran.", "label": 0},
                {"question": "Who sang?", "sentence": "It rained.", "label": 1},
            ],
        ),
        ("rte", "validation", [{"sentence1": "A b.", "sentence2": "C d.", "label": 1}]),
    ],
)
def test_glue_tsv_layout_parses(glue_root, task, split, expected):
    records = load_records(task, split, source=glue_root)
    assert [{k: v for k, v in r.items() if k != "id"} for r in records] == expected
    examples = load_examples(task, split, source=glue_root)
    assert examples["gold"] == [row["label"] for row in expected]


def test_glue_dir_from_environment_is_used_by_auto(glue_root, monkeypatch):
    monkeypatch.setenv("SAMORA_GLUE_DIR", str(glue_root))
    chosen = resolve_source("qqp", "train")
    assert chosen.kind == "glue_tsv" and "QQP/train.tsv" in chosen.description
    assert len(load_examples("mnli", "eval")) == 2  # dev_matched


def test_missing_glue_file_names_the_path(glue_root):
    (glue_root / "QNLI" / "dev.tsv").unlink()
    with pytest.raises(DataSourceError, match=r"no file .*QNLI/dev.tsv.*standard layout"):
        load_records("qnli", "validation", source=glue_root)


def test_glue_file_with_a_wrong_header_is_rejected(glue_root):
    (glue_root / "RTE" / "dev.tsv").write_text("index\tpremise\thypothesis\tlabel\n0\ta\tb\t0\n")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['sentence1', 'sentence2'\]"):
        load_records("rte", "validation", source=glue_root)


def test_unknown_source_is_rejected():
    with pytest.raises(DataSourceError, match="neither 'auto', 'bundled', 'hub'"):
        resolve_source("rte", "train", source="/no/such/folder")


REAL_GLUE_COUNTS = [
    ("cola", "train", 8551),
    ("cola", "validation", 1043),
    ("sst2", "train", 67349),
    ("sst2", "validation", 872),
    ("mrpc", "train", 3668),
    ("mrpc", "validation", 408),
    ("rte", "train", 2490),
    ("rte", "validation", 277),
    ("qnli", "validation", 5463),
]


@pytest.mark.skipif(not SHARED_GLUE.is_dir(), reason="shared GLUE files are not present")
@pytest.mark.parametrize("task, split, count", REAL_GLUE_COUNTS)
def test_real_glue_files_have_official_sizes(task, split, count):
    records = load_records(task, split, source=SHARED_GLUE)
    assert len(records) == count
    assert set(records["label"]) == {0, 1}


# --- commonsense_170k-style JSON ------------------------------------------------------------

BOOLQ = {
    "instruction": "Please answer the following question with true or false, question: "
    "do iran and afghanistan speak the same language?\n\nAnswer format: "
    "true/false",
    "input": "",
    "output": "the correct answer is true",
    "answer": "true",
}
PIQA = {
    "instruction": "Please choose the correct solution to the question: When boiling butter, "
    "when it's ready, you can\n\nSolution1: Pour it onto a plate\n\nSolution2: "
    "Pour it into a jar\n\nAnswer format: solution1/solution2",
    "input": "",
    "output": "the correct answer is solution2",
    "answer": "solution2",
}
ARC = {
    "instruction": "Please choose the correct answer to the question: Which factor will most "
    "likely cause a person to develop a fever?\n\nAnswer1: a leg muscle relaxing "
    "after exercise Answer2: a bacterial population in the bloodstream Answer3: "
    "several viral particles on the skin Answer4: carbohydrates being digested "
    "in the stomach\n\nAnswer format: answer1/answer2/answer3/answer4",
    "input": "",
    "output": "the correct answer is answer2",
    "answer": "answer2",
}


def test_instruction_json_round_trips_through_the_template(tmp_path):
    path = tmp_path / "piqa.json"
    path.write_text(json.dumps([PIQA, PIQA]))
    examples = load_examples("piqa", "train", source=path)
    assert len(examples) == 2
    assert examples[0]["prompt"] == ALPACA_WRAPPER.format(instruction=PIQA["instruction"])
    assert examples[0]["target"] == PIQA["output"] and examples[0]["gold"] == 1
    harness = load_examples("piqa", "train", source=path, template="harness")[0]
    assert harness["prompt"] == "Question: When boiling butter, when it's ready, you can\nAnswer:"
    assert harness["choices"] == [" Pour it onto a plate", " Pour it into a jar"]


def test_instruction_json_with_a_task_field_is_filtered(tmp_path):
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([{**BOOLQ, "task": "boolq"}, {**ARC, "task": "ARC-Easy"}, {**BOOLQ, "task": "BoolQ"}]))
    boolq = load_records("boolq", "train", source=path)
    assert len(boolq) == 2 and boolq[0]["label"] == 0
    assert boolq[0]["question"] == "do iran and afghanistan speak the same language"
    arc = load_records("arc_easy", "train", source=path)
    assert arc[0]["options"][1] == "a bacterial population in the bloodstream"
    with pytest.raises(ValueError, match="holds no records for task 'piqa'"):
        load_records("piqa", "train", source=path)


def test_llm_adapters_folder_layout(tmp_path):
    (tmp_path / "ARC-Challenge").mkdir()
    (tmp_path / "ARC-Challenge" / "test.json").write_text(json.dumps([ARC]))
    chosen = resolve_source("arc_challenge", "eval", source=tmp_path)
    assert chosen.kind == "json" and chosen.location.endswith("ARC-Challenge/test.json")
    assert load_examples("arc_challenge", "eval", source=tmp_path)[0]["gold"] == 1
    with pytest.raises(FileNotFoundError, match="No arc_challenge/train JSON"):
        resolve_source("arc_challenge", "train", source=tmp_path)


def test_a_record_of_the_wrong_task_is_reported(tmp_path):
    path = tmp_path / "boolq.json"
    path.write_text(json.dumps([BOOLQ, PIQA]))
    with pytest.raises(ValueError, match="record 1: not a BoolQ commonsense_170k record"):
        load_records("boolq", "train", source=path)


def test_glue_tasks_do_not_read_instruction_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps([BOOLQ]))
    with pytest.raises(DataSourceError, match="must be a folder in the standard GLUE TSV"):
        load_records("rte", "train", source=path)
