"""Write the own-task parity goldens (tests/evaluation/goldens/own_tasks_smollm2.json) by running lm-eval.

NOT part of samora's runtime or tests: run it by hand, with samora's venv (lm-eval 0.4.13 installed),
from the repository root, when the parity task files or lm-eval change::

    PYTHONPATH=src:. python benchmarks/own_task_goldens.py

lm-eval's HF backend scores SmolLM2-135M-Instruct (samora.models.smollm2.smollm2_path; float32, CPU)
on the two task YAMLs of tests/evaluation/goldens/own_tasks/ (one multiple_choice, one
generate_until with two filters) with ``--include_path`` and ``--log_samples``, once plain and once
with ``--apply_chat_template`` and a system instruction. Per document it records lm-eval's contexts
and continuations, its log-likelihoods with acc / acc_norm, or its generated text with each filter's
answer and exact_match (:func:`tests.evaluation.own_task_parity.lm_eval_records`). About a minute on
2 CPU cores.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
from pathlib import Path

from samora.models.smollm2 import smollm2_path
from tests.evaluation.own_task_parity import SYSTEM_PROMPT, lm_eval_records

OUTPUT = Path(__file__).resolve().parents[1] / "tests/evaluation/goldens/own_tasks_smollm2.json"


def main() -> None:
    from lm_eval.models.huggingface import HFLM

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    lm = HFLM(pretrained=str(smollm2_path()), dtype="float32", device="cpu", batch_size=args.batch_size)
    goldens = {
        "produced_by": "benchmarks/own_task_goldens.py (lm_eval.simple_evaluate, include_path, log_samples; "
        "not part of samora's runtime)",
        "lm_eval": importlib.metadata.version("lm_eval"),
        "transformers": importlib.metadata.version("transformers"),
        "model": "SmolLM2-135M-Instruct (samora.models.smollm2.smollm2_path), float32, CPU",
        "batch_size": args.batch_size,
        "system_instruction": SYSTEM_PROMPT,
        "runs": {
            mode: lm_eval_records(lm, chat=chat, batch_size=args.batch_size)
            for mode, chat in (("plain", False), ("chat", True))
        },
    }
    args.output.write_text(json.dumps(goldens, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
