"""Own-task log-likelihood scoring against the built-in task it copies: same examples, same scorer.

PIQA's evaluation examples (the offline bundle, ``harness`` template) are written to a CSV with an
lm-eval task YAML whose ``doc_to_text``/``doc_to_choice`` give the same prompts and continuations
(checked), and both are scored with :func:`samora.evaluation.evaluate` under ``protocol=loglik``,
rounds interleaved. The ratio own / built-in should be 1.0 up to noise: an own task reads its
rendered examples from its loader and goes through the same :mod:`samora.evaluation.loglik` scorer.

    python benchmarks/own_task_speed.py --model smollm2-135m-instruct --limit 300 --rounds 3
    python benchmarks/own_task_speed.py --model tiny --limit 8 --rounds 1   # seconds: a smoke test
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from samora.data import load_examples
from samora.data.task_set import resolve_task_set
from samora.evaluation import evaluate


def own_copy(folder: Path, limit: int) -> Path:
    """A task YAML (``piqa_own``) on a CSV of PIQA's first ``limit`` evaluation examples."""
    examples = load_examples("piqa", "eval", limit=limit, template="harness")
    with open(folder / "piqa.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "first", "second", "label"])
        for row in examples:
            writer.writerow([row["prompt"], row["choices"][0][1:], row["choices"][1][1:], row["gold"]])
    task = {
        "task": "piqa_own",
        "dataset_path": "csv",
        "dataset_kwargs": {"data_files": {"test": "piqa.csv"}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "prompt",
        "doc_to_choice": "{{[first, second]}}",
        "doc_to_target": "label",
        "metric_list": [{"metric": "acc"}],
    }
    (folder / "piqa_own.yaml").write_text(yaml.safe_dump(task))
    own = load_examples(resolve_task_set([str(folder / "piqa_own.yaml")]).tasks[0], "test")
    for column in ("prompt", "choices", "choice_prompts", "gold"):
        assert own[column] == examples[column], f"the copy differs from piqa in {column}"
    return folder / "piqa_own.yaml"


def load_model(name: str):
    if name == "tiny":
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        from samora.models.smollm2 import smollm2_path

        tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
        shapes = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
        return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **shapes)), tokenizer
    from samora.run.model_loading import load_base_model

    return load_base_model(name, "float32")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a model name or folder, or 'tiny'")
    parser.add_argument("--limit", type=int, default=300, help="PIQA evaluation examples scored")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model, tokenizer = load_model(args.model)
    with tempfile.TemporaryDirectory() as folder:
        own = own_copy(Path(folder), args.limit)
        times: dict[str, list[float]] = {"piqa": [], "piqa_own": []}
        scores = {}
        for _ in range(args.rounds):
            for name, template in (("piqa", "harness"), ("piqa_own", None)):
                started = time.perf_counter()
                results = evaluate(
                    model,
                    tokenizer,
                    [name],
                    limit=args.limit,
                    template=template,
                    batch_size=args.batch_size,
                    progress=False,
                )
                times[name].append(time.perf_counter() - started)
                scores[name] = results["tasks"][name]["metrics"]["acc"]
        assert own.is_file() and scores["piqa"] == scores["piqa_own"], scores
    built_in, copied = statistics.median(times["piqa"]), statistics.median(times["piqa_own"])
    print(f"{args.model}, {args.limit} PIQA examples, loglik, batch {args.batch_size}, median of {args.rounds}")
    print(f"built-in piqa: {built_in:.2f} s; own YAML copy: {copied:.2f} s; own / built-in = {copied / built_in:.3f}")
    print(f"acc (identical): {scores['piqa']:.4f}")


if __name__ == "__main__":
    main()
