"""Local files: a GLUE folder in the standard TSV layout, and commonsense_170k-style JSON.

GLUE folder (as written by the usual ``download_glue_data.py``)::

    <root>/CoLA/{train,dev}.tsv      no header: source, label, original label, sentence
    <root>/SST-2/{train,dev}.tsv     header: sentence, label
    <root>/MRPC/{train,dev}.tsv      header: Quality, #1 ID, #2 ID, #1 String, #2 String (UTF-8 BOM)
    <root>/QQP/{train,dev}.tsv       header: id, qid1, qid2, question1, question2, is_duplicate
    <root>/MNLI/train.tsv, dev_matched.tsv, dev_mismatched.tsv
                                     many columns, of which sentence1, sentence2, gold_label
    <root>/QNLI/{train,dev}.tsv      header: index, question, sentence, label (entailment/...)
    <root>/RTE/{train,dev}.tsv       header: index, sentence1, sentence2, label (entailment/...)

Fields are split on tabs with no quote handling (sentences contain quotes). Rows with the wrong
number of fields (a handful in QQP's train file) are skipped and counted in a warning.

Commonsense JSON: a list of ``{"instruction", "input", "output", "answer"}`` records as in
LLM-Adapters' ``commonsense_170k.json`` and ``dataset/<task>/test.json``. The instruction is parsed
back into the task's record (so any template can re-render it); rendering it again with the
``commonsense_170k`` template gives back the same instruction. A record may carry a ``"task"`` field
(any task name or alias); then only the requested task's records are read. Without one, every
record of the file is taken to belong to the requested task: ARC-C, ARC-E and OBQA share one
instruction layout, so the mixed ``commonsense_170k.json`` cannot be split by task from its text.
A folder in LLM-Adapters' layout (``<root>/<task or alias>/<split>.json``, with ``test.json`` as
the evaluation split) works too.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from samora.data.tasks import Task, get_task

logger = logging.getLogger(__name__)

_ENTAILMENT = {"entailment": 0, "not_entailment": 1}


@dataclass(frozen=True)
class TsvLayout:
    folder: str
    fields: dict[str, str | int]  # record field -> column name (or position without a header)
    label: str | int
    header: bool = True
    label_map: dict[str, int] = field(default_factory=dict)  # empty: labels are integers
    id_column: str | None = None  # None: the row number
    files: dict[str, str] = field(default_factory=lambda: {"train": "train.tsv", "validation": "dev.tsv"})


GLUE_LAYOUT = {
    "cola": TsvLayout("CoLA", {"sentence": 3}, 1, header=False),
    "sst2": TsvLayout("SST-2", {"sentence": "sentence"}, "label"),
    "mrpc": TsvLayout("MRPC", {"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality"),
    "qqp": TsvLayout("QQP", {"question1": "question1", "question2": "question2"}, "is_duplicate", id_column="id"),
    "mnli": TsvLayout(
        "MNLI",
        {"premise": "sentence1", "hypothesis": "sentence2"},
        "gold_label",
        label_map={"entailment": 0, "neutral": 1, "contradiction": 2},
        id_column="pairID",
        files={
            "train": "train.tsv",
            "validation_matched": "dev_matched.tsv",
            "validation_mismatched": "dev_mismatched.tsv",
        },
    ),
    "qnli": TsvLayout(
        "QNLI", {"question": "question", "sentence": "sentence"}, "label", label_map=_ENTAILMENT, id_column="index"
    ),
    "rte": TsvLayout(
        "RTE", {"sentence1": "sentence1", "sentence2": "sentence2"}, "label", label_map=_ENTAILMENT, id_column="index"
    ),
}


def glue_tsv_path(task: str, split: str, root: str | Path) -> Path:
    layout = GLUE_LAYOUT[task]
    return Path(root) / layout.folder / layout.files[split]


def load_glue_tsv(task: str, split: str, root: str | Path) -> datasets.Dataset:
    """Records of a GLUE ``task``/``split`` from a folder in the standard TSV layout."""
    layout = GLUE_LAYOUT[task]
    path = glue_tsv_path(task, split, root)
    if not path.is_file():
        raise FileNotFoundError(
            f"{task}/{split} needs {path}: put the GLUE files in the standard layout "
            f"(<root>/{layout.folder}/{layout.files[split]}, as written by download_glue_data.py) "
            f"under {Path(root)}."
        )
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if layout.header:
        header, rows = rows[0], rows[1:]
        wanted = [*layout.fields.values(), layout.label, *([layout.id_column] if layout.id_column else [])]
        missing = [name for name in wanted if name not in header]
        if missing:
            raise ValueError(
                f"{path} lacks column(s) {missing}; its header is {header}. "
                f"Expected the standard GLUE {layout.folder} layout."
            )
        position = {name: header.index(name) for name in header}
        width = len(header)
    else:
        position, width = {}, 4

    def column(row: list[str], name: str | int) -> str:
        return row[name] if isinstance(name, int) else row[position[name]]

    records, skipped = [], 0
    for number, row in enumerate(rows):
        if len(row) != width:
            skipped += 1
            continue
        raw_label = column(row, layout.label)
        if layout.label_map:
            if raw_label not in layout.label_map:
                skipped += 1
                continue
            label = layout.label_map[raw_label]
        else:
            label = int(raw_label)
        records.append(
            {
                "id": column(row, layout.id_column) if layout.id_column else str(number),
                **{name: column(row, col) for name, col in layout.fields.items()},
                "label": label,
            }
        )
    if skipped:
        logger.warning("%s: skipped %d malformed or unlabelled row(s) of %d", path, skipped, len(rows))
    return datasets.Dataset.from_list(records)


# --- commonsense_170k-style JSON ------------------------------------------------------------

_PREFIXES = {
    "question": "Please choose the correct answer to the question: ",
    "piqa": "Please choose the correct solution to the question: ",
    "boolq": "Please answer the following question with true or false, question: ",
    "hellaswag": "Please choose the correct ending to complete the given sentence: ",
    "winogrande": ("Please choose the correct answer to fill in the blank to complete the given sentence: "),
}
# task -> (instruction prefix, record field for the text before the options, option word)
_JSON_LAYOUT = {
    "arc_challenge": ("question", "question", "Answer"),
    "arc_easy": ("question", "question", "Answer"),
    "openbookqa": ("question", "question", "Answer"),
    "commonsense_qa": ("question", "question", "Answer"),
    "social_iqa": ("question", "question", "Answer"),
    "piqa": ("piqa", "goal", "Solution"),
    "hellaswag": ("hellaswag", "context", "Ending"),
    "winogrande": ("winogrande", "sentence", "Option"),
}


def parse_instruction(task: str, instruction: str, answer: str) -> dict[str, Any]:
    """Invert the ``commonsense_170k`` instruction of ``task`` into a record (without ``id``)."""
    instruction = instruction.strip()
    if task == "boolq":
        match = re.fullmatch(
            re.escape(_PREFIXES["boolq"]) + r"(.*)\?\n\nAnswer format: "
            r"true/false",
            instruction,
            re.DOTALL,
        )
        if not match or answer not in ("true", "false"):
            raise ValueError(f"not a BoolQ commonsense_170k record: {instruction[:90]!r}")
        return {"passage": "", "question": match[1], "label": 0 if answer == "true" else 1}
    prefix_key, head_field, word = _JSON_LAYOUT[task]
    match = re.fullmatch(
        re.escape(_PREFIXES[prefix_key]) + rf"(.*?)\n\n({word}1: .*?)\s*"
        r"Answer format: (\S+)",
        instruction,
        re.DOTALL,
    )
    if not match:
        raise ValueError(
            f"not a {task} commonsense_170k record (expected "
            f"'{_PREFIXES[prefix_key]}... {word}1: ... Answer format: ...'): "
            f"{instruction[:90]!r}"
        )
    head, options_text, answer_format = match.groups()
    options = re.split(rf"\s*{word}\d+: ", options_text)[1:]
    labels = answer_format.split("/")
    if len(options) != len(labels) or answer not in labels:
        raise ValueError(
            f"{task} record lists {len(options)} options, answer format "
            f"{answer_format!r} and answer {answer!r}: {instruction[:90]!r}"
        )
    record: dict[str, Any] = {head_field: head, "options": options, "label": labels.index(answer)}
    if task == "social_iqa":  # SIQA's text is "<context> <question>": split before the question
        context, _, question = head.rpartition(" ")
        sentence = re.fullmatch(r"(.*[.!?\"'])\s(\S[^.!?]*\?)", head, re.DOTALL)
        if sentence:
            context, question = sentence.groups()
        record.update(context=context, question=question)
    return record


def load_instruction_json(task: str, split: str, path: str | Path) -> datasets.Dataset:
    """Records of ``task`` from a commonsense_170k-style JSON file or LLM-Adapters folder."""
    task_obj = get_task(task)
    if task not in _JSON_LAYOUT and task != "boolq":
        raise ValueError(
            f"Task {task!r} has no commonsense_170k instruction format; local JSON holds commonsense tasks only."
        )
    file = instruction_file(task_obj, split, Path(path))
    rows = datasets.load_dataset("json", data_files=str(file), split="train")
    if "task" in rows.column_names:
        rows = rows.filter(lambda row: get_task(row["task"]).name == task)
    if len(rows) == 0:
        raise ValueError(f"{file} holds no records for task {task!r}.")

    def convert(row: dict[str, Any], index: int) -> dict[str, Any]:
        try:
            return {"id": str(index), **parse_instruction(task, row["instruction"], row["answer"])}
        except ValueError as err:
            raise ValueError(f"{file}, record {index}: {err}") from err

    return rows.map(convert, with_indices=True, remove_columns=rows.column_names)


def instruction_file(task: Task, split: str, path: Path) -> Path:
    if path.is_file():
        return path
    names = [f"{split}.json"] + (["test.json"] if split == task.eval_split else [])
    candidates = [path / folder / name for folder in (task.name, *task.aliases) for name in names]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"No {task.name}/{split} JSON under {path}: expected one of "
        f"{', '.join(str(c.relative_to(path)) for c in candidates[:4])} ... (LLM-Adapters layout "
        f"<root>/<task>/{names[-1]}), or pass the JSON file itself as source."
    )
