"""The files an evaluation leaves: its results as one JSON document, its per-example records as
JSON lines (``samples.jsonl``), and the reader of those records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def write_results(results: dict[str, Any], path: str | Path) -> Path:
    """Write ``results`` as indented JSON (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def write_samples(results: dict[str, Any], path: str | Path) -> Path:
    """Write the per-example records of ``results`` (from ``evaluate(..., log_samples=True)``) as
    JSON lines, one per example, with its task, and remove them from ``results``.

    loglik records: id, task, gold, pred (argmax of the summed log-likelihoods), pred_norm (argmax
    of loglik / choice length), scores (one per choice), correct; generate records: id, task, gold,
    pred (the extracted answer index, -1 if none), response (the generated text), correct;
    generate_until records: id, task, prompt, response, filtered (answer per filter), gold (text),
    pred (the first filter's answer), metrics (score per metric), correct (primary score 1)
    (:mod:`samora.evaluation.text_scoring`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for task, entry in results["tasks"].items():
            for sample in entry.pop("samples", []):
                record = {"id": sample["id"], "task": task, **sample}
                record.setdefault("correct", sample["pred"] == sample["gold"])
                if "scores" in record:
                    record["scores"] = [float(score) for score in record["scores"]]
                handle.write(json.dumps(record, default=_json_scalar) + "\n")
    temporary.replace(path)
    return path


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``samples.jsonl`` written by :func:`write_samples`."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {value!r}")
