"""Compute the acc / acc_norm goldens of tests/evaluation/goldens/ by running lm-eval itself.

NOT part of samora's runtime or tests (lm-eval is samora's optional `lm-eval` extra): run it by hand, with
samora's venv, when the goldens must be remade. It exports the first examples of bundled BoolQ
and ARC-Easy with samora's ``harness`` template as local-JSONL lm-eval tasks
(:mod:`lm_eval_export`), runs lm-evaluation-harness 0.4.13's HF backend in a subprocess on the
converted SmolLM2-135M-Instruct folder (float32, CPU) with ``--log_samples``, and writes per
example: samora's prompt and choices, the gold index, lm-eval's loglik per choice and its 0/1
``acc`` and ``acc_norm``.

    python benchmarks/lm_eval_goldens.py \\
        [--lm-eval-python PYTHON] [--boolq 40] [--arc-easy 20]

About 2-4 minutes on 2 CPU cores. ``--lm-eval-python`` (default: this interpreter) is a Python with
lm-eval installed (``scripts/setup.sh`` installs the ``lm-eval`` extra).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from lm_eval_export import LM_EVAL_PYTHON, read_samples, run_lm_eval, write_task

from samora.data import load_examples
from samora.models.smollm2 import smollm2_path

TEMPLATE = "harness"
OUTPUT = Path(__file__).resolve().parents[1] / "tests/evaluation/goldens/lm_eval_smollm2.json"


def golden_examples(examples, samples) -> list[dict]:
    rows = []
    for example, sample in zip(examples, samples, strict=True):
        if sample["doc"]["id"] != example["id"]:
            raise RuntimeError(
                f"lm-eval's document {sample['doc_id']} is {sample['doc']['id']!r}, expected {example['id']!r}"
            )
        rows.append(
            {
                "id": example["id"],
                "prompt": example["prompt"],
                "choices": example["choices"],
                "gold": example["gold"],
                "loglik": [float(response[0]) for response in sample["filtered_resps"]],
                "acc": int(sample["acc"]),
                "acc_norm": int(sample["acc_norm"]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm-eval-python", default=LM_EVAL_PYTHON)
    parser.add_argument("--boolq", type=int, default=40, help="BoolQ examples")
    parser.add_argument("--arc-easy", type=int, default=20, help="ARC-Easy examples")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    version = subprocess.run(
        [
            args.lm_eval_python,
            "-c",
            "import importlib.metadata as m; print(m.version('lm_eval'), m.version('transformers'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    model_path = smollm2_path()
    limits = {"boolq": args.boolq, "arc_easy": args.arc_easy}
    with tempfile.TemporaryDirectory(prefix="lm-eval-goldens-") as scratch:
        examples = {
            task: load_examples(task, "eval", limit=limit, template=TEMPLATE) for task, limit in limits.items()
        }
        for task, rows in examples.items():
            write_task(rows, Path(scratch) / "tasks", f"samora_golden_{task}")
        run_lm_eval(
            Path(scratch) / "tasks",
            [f"samora_golden_{task}" for task in limits],
            model_path,
            Path(scratch) / "out",
            batch_size=args.batch_size,
            python=args.lm_eval_python,
        )
        tasks = {
            task: {
                "template": TEMPLATE,
                "split": "eval",
                "limit": limits[task],
                "examples": golden_examples(rows, read_samples(Path(scratch) / "out", f"samora_golden_{task}")),
            }
            for task, rows in examples.items()
        }
    goldens = {
        "produced_by": "benchmarks/lm_eval_goldens.py (lm-eval run --model hf, "
        "--log_samples; not part of samora's runtime)",
        "lm_eval": version[0],
        "transformers": version[1],
        "model": "SmolLM2-135M-Instruct (samora.models.smollm2.smollm2_path), float32, CPU",
        "batch_size": args.batch_size,
        "tasks": tasks,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(goldens, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
