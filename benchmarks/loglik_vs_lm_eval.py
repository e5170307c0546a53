"""Loglik scoring speed: samora's shared-prompt scorer, its plain path, and lm-eval's HF backend.

On the same ARC-Easy examples (the first ``--examples`` of the bundled evaluation split, samora's
``load_examples``), the same model (the converted SmolLM2-135M-Instruct folder, float32, CPU,
no adapter), the same batch size and torch threads, for each template (``commonsense_170k`` and
``harness``), three contenders are timed in interleaved rounds (the order rotates each round):

- ``samora_shared``: ``loglik_scores(...)``, the default (each example's prompt once);
- ``samora_plain``: ``loglik_scores(..., share_prompts=False)``, one full forward per choice;
- ``lm_eval``: lm-evaluation-harness 0.4.13 (in a subprocess) on a local-JSONL export of exactly
  those examples and that template (:mod:`lm_eval_export`), in a long-lived subprocess that loads
  the model once (:mod:`lm_eval_worker`); its time is ``simple_evaluate``'s (task build,
  tokenising, scoring, metrics).

samora's time covers tokenising and scoring (the examples are rendered beforehand). Each
contender runs once on 8 examples before the first round (warm-up). The speed-up is the
round-by-round ratio lm_eval seconds / samora_shared seconds (median [min-max]); the issue's
target is >= 3x. Accuracies of every contender and the largest shared-plain score difference
are recorded as a check that all three score the same thing.

    python benchmarks/loglik_vs_lm_eval.py --examples 100 --rounds 3 --batch-size 8 --threads 2 \\
        --max-load 1.5 --output benchmarks/results/loglik_vs_lm_eval

Not part of samora's runtime; lm-eval is an optional extra of samora (`lm-eval`, installed by scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from lm_eval_export import LM_EVAL_PYTHON, write_task

from samora.benchmark.command import machine_description, wait_for_quiet
from samora.benchmark.summaries import summary
from samora.data import load_examples
from samora.evaluation import choice_length, loglik_scores
from samora.models.smollm2 import load_smollm2, smollm2_path

CONTENDERS = ("samora_shared", "samora_plain", "lm_eval")
TEMPLATES = ("commonsense_170k", "harness")
WARMUP_EXAMPLES = 8


class LmEvalWorker:
    """lm_eval_worker.py as a subprocess: one ``evaluate(task)`` per request line."""

    def __init__(self, python: str, include_path: Path, batch_size: int, threads: int):
        script = Path(__file__).with_name("lm_eval_worker.py")
        self.process = subprocess.Popen(
            [
                python,
                str(script),
                "--model",
                str(smollm2_path()),
                "--include-path",
                str(include_path),
                "--batch-size",
                str(batch_size),
                "--threads",
                str(threads),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={
                "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1",
                "PATH": "/usr/bin:/bin",
                "TOKENIZERS_PARALLELISM": "false",
                "OMP_NUM_THREADS": str(threads),
            },
        )
        self._read("READY")

    def _read(self, prefix: str) -> str:
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(f"lm_eval_worker.py exited ({self.process.wait()}) before {prefix}; its error is above.")

    def evaluate(self, task: str) -> dict:
        self.process.stdin.write(task + "\n")
        self.process.stdin.flush()
        return json.loads(self._read("RESULT "))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def prepare(templates: list[str], n_examples: int, tasks_dir: Path) -> dict[str, dict]:
    """Render the examples per template; export them (and a warm-up subset) as lm-eval tasks."""
    cases = {}
    for template in templates:
        examples = load_examples("arc_easy", "eval", limit=n_examples, template=template)
        name = f"samora_bench_arc_easy_{template}"
        write_task(examples, tasks_dir, name)
        write_task(examples.select(range(min(WARMUP_EXAMPLES, len(examples)))), tasks_dir, name + "_warmup")
        cases[template] = {"examples": examples, "task": name}
    return cases


def samora_scores(model, tokenizer, examples, *, share: bool, batch_size: int) -> tuple[float, list[float]]:
    contexts = [p for prompts in examples["choice_prompts"] for p in prompts]
    continuations = [c for choices in examples["choices"] for c in choices]
    started = time.perf_counter()
    scores = loglik_scores(
        model, tokenizer, contexts, continuations, batch_size=batch_size, share_prompts=share, progress=False
    )
    return time.perf_counter() - started, scores


def accuracies(scores: list[float], examples) -> dict[str, float]:
    """acc and acc_norm (lm-eval's length convention) of per-choice scores."""
    hits, hits_norm, start = [], [], 0
    for choices, gold in zip(examples["choices"], examples["gold"]):
        chosen = np.asarray(scores[start : start + len(choices)])
        lengths = np.asarray([choice_length(c) for c in choices])
        hits.append(int(np.argmax(chosen)) == gold)
        hits_norm.append(int(np.argmax(chosen / lengths)) == gold)
        start += len(choices)
    return {"acc": float(np.mean(hits)), "acc_norm": float(np.mean(hits_norm))}


def run_contender(name, case, model, tokenizer, worker, batch_size, warmup=False) -> dict:
    examples, task = case["examples"], case["task"]
    if warmup:
        examples, task = examples.select(range(min(WARMUP_EXAMPLES, len(examples)))), task + "_warmup"
    if name == "lm_eval":
        result = worker.evaluate(task)
        return {
            "seconds": result["seconds"],
            "metrics": {k: result["metrics"][f"{k},none"] for k in ("acc", "acc_norm")},
        }
    seconds, scores = samora_scores(model, tokenizer, examples, share=name == "samora_shared", batch_size=batch_size)
    return {"seconds": seconds, "metrics": accuracies(scores, examples), "scores": scores}


def measure(cases, model, tokenizer, worker, args) -> dict[str, dict]:
    """Interleaved rounds: every template, every contender (rotating order) per round."""
    for case in cases.values():
        for name in CONTENDERS:
            run_contender(name, case, model, tokenizer, worker, args.batch_size, warmup=True)
    measured = {template: {name: [] for name in CONTENDERS} for template in cases}
    for round_index in range(args.rounds):
        shift = round_index % len(CONTENDERS)
        order = CONTENDERS[shift:] + CONTENDERS[:shift]
        for template, case in cases.items():
            for name in order:
                result = run_contender(name, case, model, tokenizer, worker, args.batch_size)
                measured[template][name].append(result)
                print(
                    f"round {round_index + 1} {template:16s} {name:13s} "
                    f"{result['seconds']:7.2f} s  {result['metrics']}",
                    flush=True,
                )
    return measured


def summarise(measured: dict, n_examples: int) -> dict[str, dict]:
    out = {}
    for template, runs in measured.items():
        seconds = {name: [run["seconds"] for run in runs[name]] for name in CONTENDERS}
        shared, plain = runs["samora_shared"], runs["samora_plain"]
        out[template] = {
            "seconds": {name: summary(values) for name, values in seconds.items()},
            "examples_per_s": {name: n_examples / float(np.median(values)) for name, values in seconds.items()},
            "speedup_vs_lm_eval": summary(
                [lm / fast for lm, fast in zip(seconds["lm_eval"], seconds["samora_shared"])]
            ),
            "speedup_vs_plain": summary(
                [p / fast for p, fast in zip(seconds["samora_plain"], seconds["samora_shared"])]
            ),
            "metrics": {name: runs[name][0]["metrics"] for name in CONTENDERS},
            "max_abs_shared_minus_plain": max(
                max(abs(a - b) for a, b in zip(s["scores"], p["scores"])) for s, p in zip(shared, plain)
            ),
            "rounds": seconds,
        }
    return out


def markdown(results: dict) -> str:
    settings = results["settings"]
    lines = [
        f"# Loglik scoring: samora vs lm-eval {results['lm_eval']} (HF backend)",
        "",
        f"{settings['examples']} ARC-Easy examples, SmolLM2-135M-Instruct float32 on "
        f"{results['machine'].get('cpu', 'CPU')}, batch size {settings['batch_size']}, "
        f"{settings['threads']} torch threads, {settings['rounds']} interleaved rounds; "
        f"1/5/15-min load average after: {results['load']['after']}. "
        "Target: samora >= 3x lm-eval's examples/s.",
        "",
        "| template | contender | median s [min-max] | examples/s | acc | acc_norm |",
        "|---|---|---|---|---|---|",
    ]
    for template, entry in results["templates"].items():
        for name in CONTENDERS:
            stats, metrics = entry["seconds"][name], entry["metrics"][name]
            lines.append(
                f"| {template} | {name} | {stats['median']:.2f} [{stats['min']:.2f}-"
                f"{stats['max']:.2f}] | {entry['examples_per_s'][name]:.2f} | "
                f"{metrics['acc']:.3f} | {metrics['acc_norm']:.3f} |"
            )
    lines += [
        "",
        "| template | shared vs lm-eval (x) | shared vs plain (x) | target met | max abs shared-plain score |",
        "|---|---|---|---|---|",
    ]
    for template, entry in results["templates"].items():
        lm, plain = entry["speedup_vs_lm_eval"], entry["speedup_vs_plain"]
        lines.append(
            f"| {template} | {lm['median']:.2f} [{lm['min']:.2f}-{lm['max']:.2f}] | "
            f"{plain['median']:.2f} [{plain['min']:.2f}-{plain['max']:.2f}] | "
            f"{'yes' if lm['median'] >= 3 else 'no'} | "
            f"{entry['max_abs_shared_minus_plain']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--templates", default=",".join(TEMPLATES))
    parser.add_argument("--lm-eval-python", default=LM_EVAL_PYTHON)
    parser.add_argument(
        "--max-load", type=float, default=None, help="wait until the 1-minute load average is below this first"
    )
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("results") / "loglik_vs_lm_eval")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_smollm2(dtype=torch.float32)
    model.eval()
    with tempfile.TemporaryDirectory(prefix="loglik-vs-lm-eval-") as scratch:
        cases = prepare(args.templates.split(","), args.examples, Path(scratch))
        worker = LmEvalWorker(args.lm_eval_python, Path(scratch), args.batch_size, args.threads)
        load = wait_for_quiet(args.max_load, 1500.0, print) if args.max_load else None
        try:
            measured = measure(cases, model, tokenizer, worker, args)
        finally:
            worker.close()
    version = subprocess.run(
        [args.lm_eval_python, "-c", "import importlib.metadata as m; print(m.version('lm_eval'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    results = {
        "settings": {
            "examples": args.examples,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "task": "arc_easy",
            "model": "SmolLM2-135M-Instruct float32",
        },
        "lm_eval": version,
        "machine": machine_description(SimpleNamespace(device="cpu")),
        "load": {"before": load, "after": [round(x, 2) for x in os.getloadavg()]},
        "templates": summarise(measured, args.examples),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "loglik_vs_lm_eval.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.output / "loglik_vs_lm_eval.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
