"""samora's rendered examples as an lm-evaluation-harness task, and lm-eval run on it.

NOT part of samora's runtime or tests: the goldens script and the speed benchmark use it to run
lm-eval (samora's `lm-eval` extra) as a subprocess on
exactly the examples samora scores:

- :func:`write_task` exports examples (``samora.data.load_examples`` rows) to a local JSONL file
  plus a task YAML (``dataset_path: json``, ``output_type: multiple_choice``), where each choice is
  samora's continuation without the target delimiter: a samora choice `` yes`` becomes lm-eval's
  ``target_delimiter + "yes"`` with ``target_delimiter: " "``; a template whose choices start
  without a space (``commonsense_170k``) gets ``target_delimiter: ""``.
- :func:`run_lm_eval` runs ``lm_eval run --model hf ... --log_samples`` (the goldens script);
  :func:`read_samples` reads the per-example records back.

lm-eval moves *all* trailing whitespace of a prompt into the continuation (``context.rstrip()``),
samora only spaces; for prompts ending in a newline (``commonsense_170k``'s "### Response:\\n") the
two therefore tokenise the boundary differently, so scores can differ there (timing is unaffected).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# lm-eval is samora's `lm-eval` extra: by default it runs under this interpreter, in a process of its own
LM_EVAL_PYTHON = sys.executable


def write_task(examples: Any, folder: str | Path, name: str) -> Path:
    """Write ``examples`` as lm-eval task ``name`` (``<name>.jsonl`` + ``<name>.yaml``)."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    choices = [c for row in examples["choices"] for c in row]
    delimiter = " " if all(c.startswith(" ") for c in choices) else ""
    data = folder / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as file:
        for row in examples:
            if any(prompt != row["prompt"] for prompt in row["choice_prompts"]):
                raise ValueError(
                    f"Example {row['id']!r} scores its choices after different "
                    "prompts (WinoGrande's partial scoring); export only templates "
                    "whose choices share one prompt."
                )
            file.write(
                json.dumps(
                    {
                        "id": row["id"],
                        "prompt": row["prompt"],
                        "gold": row["gold"],
                        "choices": [c.removeprefix(delimiter) for c in row["choices"]],
                    }
                )
                + "\n"
            )
    task = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "prompt",
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": delimiter,
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
    }
    (folder / f"{name}.yaml").write_text(json.dumps(task, indent=2) + "\n", encoding="utf-8")
    return folder


def run_lm_eval(
    tasks_dir: str | Path,
    tasks: Sequence[str],
    model_path: str | Path,
    output_dir: str | Path,
    *,
    batch_size: int,
    threads: int | None = None,
    python: str = LM_EVAL_PYTHON,
) -> float:
    """Run lm-eval's HF backend (float32, CPU) on ``tasks``; return the wall seconds of the run
    (the whole subprocess: start-up and model load included)."""
    command = [
        python,
        "-m",
        "lm_eval",
        "run",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_path},dtype=float32",
        "--tasks",
        ",".join(tasks),
        "--include_path",
        str(tasks_dir),
        "--batch_size",
        str(batch_size),
        "--device",
        "cpu",
        "--log_samples",
        "--output_path",
        str(output_dir),
    ]
    environment = {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PATH": "/usr/bin:/bin",
    }
    if threads is not None:
        environment.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"lm-eval failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return seconds


def read_samples(output_dir: str | Path, task: str) -> list[dict[str, Any]]:
    """lm-eval's ``--log_samples`` records of ``task`` (the newest file), in document order."""
    files = sorted(Path(output_dir).rglob(f"samples_{task}_*.jsonl"), key=lambda path: path.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"No samples_{task}_*.jsonl under {output_dir}.")
    records = [json.loads(line) for line in files[-1].read_text(encoding="utf-8").splitlines()]
    return sorted(records, key=lambda record: record["doc_id"])
