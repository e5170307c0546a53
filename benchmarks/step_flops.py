"""Matmul FLOPs of one training step (forward + backward) and of a no-grad forward per contender:
the arithmetic floor of the step-time and generation ratios that ``samora bench`` measures.

Counted with ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and attention; the
element-wise work and the optimizer are not counted) on the same base model, contenders and inputs
as ``samora bench`` (``samora.benchmark.contenders``). A method whose FLOP ratio to PEFT's LoRA is
above a speed target cannot meet it by removing overhead; its time ratio can at best approach the
FLOP ratio.

    python benchmarks/step_flops.py [--model smollm2] [--methods moore,samora] [--batch 8] [--seq-len 128]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from samora.benchmark.contenders import BenchSettings, default_contenders, load_bench_model


def step_flops(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> int:
    """Matmul FLOPs of ``model(**inputs).loss.backward()``."""
    with FlopCounterMode(display=False) as counter:
        model(**inputs).loss.backward()
    return counter.get_total_flops()


def forward_flops(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> int:
    """Matmul FLOPs of a no-grad forward in eval mode: per token, what a cached generation step costs
    (its attention over the cache aside)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(**inputs)
    model.train()
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="smollm2, tiny or a local causal-LM folder")
    parser.add_argument("--methods", default="moore,samora,lora", help="comma-separated registered methods")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--r", type=int, default=8)
    args = parser.parse_args(argv)
    settings = BenchSettings(model=args.model, batch=args.batch, seq_len=args.seq_len, r=args.r)
    base = load_bench_model(settings)
    rows = []
    for contender in default_contenders(args.methods.split(",")):
        model = contender.build(base, settings).train()
        inputs = settings.batch_inputs(base.config.vocab_size)
        if not contender.uses_task:
            inputs.pop("task_ids")
        rows.append(
            {"name": contender.name, "flops": step_flops(model, inputs), "forward_flops": forward_flops(model, inputs)}
        )
    reference = next(row for row in rows if row["name"] == "peft_lora")
    print(
        f"{settings.model}, batch {settings.batch} x {settings.seq_len}, r = {settings.r}, targets "
        f"{','.join(settings.targets)}: matmul FLOPs\n"
    )
    print(
        "| contender | training step (forward + backward), GFLOP | / PEFT LoRA | no-grad forward, GFLOP "
        "| / PEFT LoRA |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        row["ratio_to_peft_lora"] = row["flops"] / reference["flops"]
        row["forward_ratio_to_peft_lora"] = row["forward_flops"] / reference["forward_flops"]
        print(
            f"| {row['name']} | {row['flops'] / 1e9:.3f} | {row['ratio_to_peft_lora']:.3f} | "
            f"{row['forward_flops'] / 1e9:.3f} | {row['forward_ratio_to_peft_lora']:.3f} |"
        )
    return rows


if __name__ == "__main__":
    main()
