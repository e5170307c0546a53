"""generate_until speed and agreement: samora's generator against lm-eval's HF backend, in one process.

The prompts are the parity task's questions (tests/evaluation/goldens/own_tasks/parity_gen.jsonl,
rendered ``Q: ...\\nA:``), repeated to ``--prompts``, each with a distinct numbered prefix; both sides
run the same model object (default: the converted SmolLM2-135M-Instruct folder, float32, CPU) with the
same batch size, ``until`` and ``max_gen_toks``, in interleaved rounds (the order alternates):

- ``samora``: :func:`samora.evaluation.generate_until.generate_until`;
- ``lm_eval``: ``HFLM.generate_until`` on the same requests (lm-eval 0.4.13 installed in this venv).

It reports each round's seconds, the ratio lm_eval / samora (median) and whether every generated text
is identical. Time it on a quiet machine, e.g.::

    PYTHONPATH=src python benchmarks/generate_until_vs_lm_eval.py --prompts 64 --rounds 3 --batch-size 8 \\
        --max-gen-toks 32 --threads 2

Not part of samora's runtime or tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from samora.evaluation.generate_until import GenerationSettings, generate_until
from samora.models.smollm2 import smollm2_path

DOCS = Path(__file__).resolve().parents[1] / "tests/evaluation/goldens/own_tasks/parity_gen.jsonl"
UNTIL = ["\n", "Q:"]


def prompts(count: int) -> list[str]:
    questions = [json.loads(line)["question"] for line in DOCS.read_text(encoding="utf-8").splitlines()]
    return [f"({i}) Q: {questions[i % len(questions)]}\nA:" for i in range(count)]


def run_samora(model, tokenizer, texts: list[str], args) -> list[str]:
    settings = GenerationSettings(tuple(UNTIL), args.max_gen_toks)
    return generate_until(model, tokenizer, texts, settings, batch_size=args.batch_size, progress=False)


def run_lm_eval(lm, texts: list[str], args) -> list[str]:
    from lm_eval.api.instance import Instance

    kwargs = {"until": UNTIL, "max_gen_toks": args.max_gen_toks, "do_sample": False}
    requests = [Instance("generate_until", {}, (text, dict(kwargs)), i) for i, text in enumerate(texts)]
    return lm.generate_until(requests, disable_tqdm=True)


def main() -> None:
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a Hugging Face model folder (default: SmolLM2-135M)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-gen-toks", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.model or str(smollm2_path())
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size)
    texts = prompts(args.prompts)
    contenders = {
        "samora": lambda: run_samora(model, tokenizer, texts, args),
        "lm_eval": lambda: run_lm_eval(lm, texts, args),
    }
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    outputs = {}
    for round_ in range(args.rounds):
        for name in list(contenders)[:: 1 if round_ % 2 == 0 else -1]:
            started = time.perf_counter()
            outputs[name] = contenders[name]()
            seconds[name].append(time.perf_counter() - started)
    ratios = [theirs / ours for ours, theirs in zip(seconds["samora"], seconds["lm_eval"])]
    report = {
        "model": folder,
        "prompts": args.prompts,
        "batch_size": args.batch_size,
        "max_gen_toks": args.max_gen_toks,
        "threads": args.threads,
        "seconds": seconds,
        "lm_eval_over_samora_median": statistics.median(ratios),
        "identical_texts": outputs["samora"] == outputs["lm_eval"],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
