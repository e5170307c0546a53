"""QLoRA: peak memory of a SAMoRA training step on a 4-bit base against fp32 and bf16 bases, and
SAMoRA's step time against PEFT's LoRA on the same 4-bit base (the issue's target: <= 1.10x).

    python benchmarks/qlora_step.py --device cuda --output benchmarks/results/qlora_step_cuda.md
    python benchmarks/qlora_step.py --model TINY_FOLDER --batch 2 --length 16 --rounds 2   # a check
    python benchmarks/qlora_step.py --attn-implementation flash_attention_2 ...           # vs sdpa

Every measurement runs in a fresh process (``--probe``), so one base's memory does not linger into
the next: it loads the base as ``samora train`` does (``model.dtype``, ``model.quantization=4bit``:
nf4 with double quantisation, computing in the base dtype, and PEFT's k-bit preparation), adapts
it, runs one warm-up step, then measures.

- memory, per base (float32, bfloat16, 4-bit): the peak over ``--steps`` AdamW steps of SAMoRA
  (CUDA: ``torch.cuda.max_memory_allocated``; CPU: the peak resident size during the steps, Linux).
- time: SAMoRA and PEFT's LoRA (same targets and rank) each on its own copy of the 4-bit base in
  one process, one step each per round, the order alternating; the ratio is the median over rounds
  of SAMoRA's step time over LoRA's, so drift on a shared machine cancels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TASKS = ["task_a", "task_b", "task_c"]
DROPOUT = 0.05  # the same input dropout for both contenders (samora bench's setting): PEFT's default is none
BASES = {"float32": ("float32", None), "bfloat16": ("bfloat16", None), "4bit": (None, "4bit")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model.name (default: the offline SmolLM2)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256, help="tokens per example")
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="measured steps of the memory probes")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds (one step of each contender)")
    parser.add_argument("--attn-implementation", default=None, help="model.attn_implementation (default: the model's)")
    parser.add_argument("--output", help="write the markdown table here (and the figures as .json next to it)")
    parser.add_argument("--probe", help=argparse.SUPPRESS)  # internal: one measurement, in this process
    return parser.parse_args(argv)


def load(args: argparse.Namespace, base: str):
    """The base model as ``samora train`` loads it (its ``from_pretrained`` keywords and, quantized,
    PEFT's k-bit preparation); no tokenizer needed. A 4-bit base computes in bf16 on CUDA, fp32 on CPU."""
    from transformers import AutoModelForCausalLM

    from samora.models.smollm2 import SMOLLM2_ALIASES, smollm2_path
    from samora.run.model_loading import from_pretrained_keywords, prepare_quantized_model
    from samora.run.sections import ModelSection

    dtype, quantization = BASES[base]
    dtype = dtype or ("bfloat16" if args.device == "cuda" else "float32")
    options = ModelSection(dtype=dtype, quantization=quantization, attn_implementation=args.attn_implementation)
    path = smollm2_path() if args.model in SMOLLM2_ALIASES else args.model
    model = AutoModelForCausalLM.from_pretrained(path, **from_pretrained_keywords(options, dtype))
    if quantization:
        prepare_quantized_model(model)
        return model
    return model.to(args.device)


def adapted(args: argparse.Namespace, base: str, contender: str):
    """``base`` adapted by SAMoRA (r, 3 experts, 3 tasks) or by PEFT's LoRA on the same modules at rank r."""
    import samora

    model = load(args, base)
    config = samora.SAMoRAConfig(r=args.r, num_experts=3, tasks=TASKS, dropout=DROPOUT)
    if contender == "samora":
        return samora.get_model(model, config)
    import peft

    lora = peft.LoraConfig(
        r=args.r, lora_alpha=2 * args.r, lora_dropout=DROPOUT, target_modules=list(config.target_modules)
    )
    return peft.get_peft_model(model, lora)


def training_step(args: argparse.Namespace, model, contender: str):
    """One AdamW step on a fixed random batch (labels = inputs), as a closure."""
    import torch

    device = next(p for p in model.parameters() if p.requires_grad).device
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (args.batch, args.length), generator=generator).to(device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    if contender == "samora":
        batch["task_ids"] = torch.arange(args.batch, device=device) % len(TASKS)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step() -> None:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def synchronize(args: argparse.Namespace) -> None:
    if args.device == "cuda":
        import torch

        torch.cuda.synchronize()


def peak_memory(args: argparse.Namespace, base: str) -> dict:
    """Peak memory (MiB) of ``--steps`` SAMoRA steps on ``base``, after one warm-up step."""
    import torch

    from samora.benchmark.memory import MEBIBYTE, lifetime_peak_rss_bytes, reset_peak_rss

    step = training_step(args, adapted(args, base, "samora"), "samora")
    step()
    synchronize(args)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    reset = args.device == "cpu" and reset_peak_rss()
    for _ in range(args.steps):
        step()
    synchronize(args)
    peak = torch.cuda.max_memory_allocated() if args.device == "cuda" else lifetime_peak_rss_bytes()
    return {"base": base, "peak_mib": peak / MEBIBYTE, "peak_is_of_steps_only": args.device == "cuda" or reset}


def step_times(args: argparse.Namespace) -> dict:
    """Per-round step times (s) of SAMoRA and PEFT LoRA on the same 4-bit base, interleaved."""
    steps = {name: training_step(args, adapted(args, "4bit", name), name) for name in ("samora", "peft_lora")}
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_index in range(args.rounds):
        for name in sorted(steps, reverse=round_index % 2 == 1):
            synchronize(args)
            start = time.perf_counter()
            steps[name]()
            synchronize(args)
            times[name].append(time.perf_counter() - start)
    ratios = [s / p for s, p in zip(times["samora"], times["peft_lora"], strict=True)]
    return {"times_s": times, "samora_over_peft_lora": statistics.median(ratios)}


def run_probe(args: argparse.Namespace, probe: str) -> dict:
    """Run one measurement (``memory:<base>`` or ``time``) in a fresh process; its last line is JSON."""
    settings = ("model", "device", "batch", "length", "r", "steps", "rounds", "attn_implementation")
    argv = [
        item
        for name in settings
        if getattr(args, name) is not None
        for item in (f"--{name.replace('_', '-')}", str(getattr(args, name)))
    ]
    command = [sys.executable, __file__, *argv, "--probe", probe]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"probe {probe} failed:\n{finished.stderr[-3000:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def table(memory: list[dict], timing: dict, args: argparse.Namespace) -> str:
    fp32 = next(m["peak_mib"] for m in memory if m["base"] == "float32")
    rows = [f"| {m['base']} | {m['peak_mib']:.0f} | {m['peak_mib'] / fp32:.2f} |" for m in memory]
    median = {name: statistics.median(values) for name, values in timing["times_s"].items()}
    return "\n".join(
        [
            f"QLoRA step on {args.model}, {args.device}, batch {args.batch} x {args.length} tokens, r={args.r}, "
            f"attention {args.attn_implementation or 'the model default'}",
            "",
            "| base | SAMoRA step peak (MiB) | vs float32 |",
            "|---|---|---|",
            *rows,
            "",
            f"Step time on the 4-bit base over {args.rounds} interleaved rounds: "
            f"SAMoRA {median['samora'] * 1e3:.1f} ms, PEFT LoRA {median['peft_lora'] * 1e3:.1f} ms; "
            "median per-round ratio "
            f"{timing['samora_over_peft_lora']:.3f}x (target <= 1.10x)",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.probe:
        kind, _, base = args.probe.partition(":")
        print(json.dumps(peak_memory(args, base) if kind == "memory" else step_times(args)))
        return
    memory = [run_probe(args, f"memory:{base}") for base in BASES]
    timing = run_probe(args, "time")
    report = table(memory, timing, args)
    print(report)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(report + "\n")
        Path(args.output).with_suffix(".json").write_text(json.dumps({"memory": memory, "time": timing}, indent=2))


if __name__ == "__main__":
    main()
