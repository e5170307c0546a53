"""A long-lived lm-evaluation-harness process for benchmarks/loglik_vs_lm_eval.py.

NOT part of samora's runtime: it imports only lm-eval (the `lm-eval` extra) and runs in its own process. It loads
the HF model once (``HFLM``, float32, CPU), prints ``READY``, then for every line on stdin (a
task name from ``--include-path``) runs ``lm_eval.simple_evaluate`` on that task, zero-shot, and
prints ``RESULT {"task", "seconds", "metrics"}``: the seconds of ``simple_evaluate`` (building the
task from its JSONL, tokenising, scoring, metrics), without start-up or model load, so that it
compares with samora's scorer timed in the parent process.

    .venv/bin/python benchmarks/lm_eval_worker.py --model DIR --include-path DIR \\
        --batch-size 8 --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--include-path", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    if args.threads:
        torch.set_num_threads(args.threads)
    model = HFLM(pretrained=args.model, dtype="float32", batch_size=args.batch_size, device="cpu")
    tasks = TaskManager(include_path=args.include_path)
    print("READY", flush=True)
    for line in sys.stdin:
        task = line.strip()
        started = time.perf_counter()
        results = simple_evaluate(
            model=model,
            tasks=[task],
            task_manager=tasks,
            num_fewshot=0,
            log_samples=False,
            bootstrap_iters=0,
            verbosity="ERROR",
        )
        seconds = time.perf_counter() - started
        metrics = {name: value for name, value in results["results"][task].items() if isinstance(value, (int, float))}
        print("RESULT " + json.dumps({"task": task, "seconds": seconds, "metrics": metrics}), flush=True)


if __name__ == "__main__":
    main()
