"""Cost against the number of configured tasks T: one task-indexed layer, forward + backward.

MTL-LoRA and MoORE build their task terms (M_t = (sum_i p_ti B_i) Lambda_t; P_task e_t) for the
batch's distinct tasks only, so a step should cost the same at T = 1 and T = 10,000. This times one
layer per T (the batch's examples cycle through min(T, batch) tasks) and, for MTL-LoRA, the former
all-tasks path (every M_t built, then indexed) for scale.

    python benchmarks/task_scaling.py [--threads 1] [--tokens 128] [--batch 8] [--tasks 1,10,100,1000,10000]

Times are the minimum thread CPU time over repeats (see smora_dispatch.py).
"""

from __future__ import annotations

import argparse

import torch
from smora_dispatch import cpu_ms
from torch import nn

from samora.methods.moore import MoOREConfig, MoORELayer
from samora.methods.mtllora import MTLLoRAConfig, MTLLoRALayer
from samora.routing import RoutingState


def all_tasks_delta(layer: MTLLoRALayer, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
    """The former MTL-LoRA path: every task's M_t, then one per example."""
    matrices = layer.task_matrices()[task_ids]
    return torch.bmm(x @ layer.mtllora_A.T, matrices.transpose(1, 2)) * layer.config.scaling


def build(method: str, num_tasks: int, d: int) -> nn.Module:
    tasks = [f"t{i}" for i in range(num_tasks)]
    if method == "mtllora":
        layer = MTLLoRALayer(nn.Linear(d, d), MTLLoRAConfig(tasks=tasks, dropout=0.0), RoutingState())
    else:
        layer = MoORELayer(nn.Linear(d, d), MoOREConfig(tasks=tasks), RoutingState())
    layer.reset_parameters()
    return layer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--d", type=int, default=576, help="d_in = d_out (576: SmolLM2's q_proj)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per example")
    parser.add_argument("--tasks", default="1,10,100,1000,10000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"CPU, threads={args.threads}, d={args.d}, batch {args.batch} x {args.tokens} tokens, float32, "
        f"min thread time of {args.repeats}, forward + backward of one layer\n"
    )
    print("| T | MTL-LoRA (ms) | MTL-LoRA, all-tasks path (ms) | MoORE (ms) |")
    print("|---|---|---|---|")
    x = torch.randn(args.batch, args.tokens, args.d, requires_grad=True)
    for num_tasks in (int(t) for t in args.tasks.split(",")):
        task_ids = torch.arange(args.batch) % num_tasks
        mtl, moore = build("mtllora", num_tasks, args.d), build("moore", num_tasks, args.d)
        moore.state.task_ids = task_ids
        times = [
            cpu_ms(lambda: mtl.delta(x, task_ids).square().mean().backward(), args.repeats),
            cpu_ms(lambda: all_tasks_delta(mtl, x, task_ids).square().mean().backward(), args.repeats),
            cpu_ms(lambda: moore(x).square().mean().backward(), args.repeats),
        ]
        print(f"| {num_tasks} | " + " | ".join(f"{t:.1f}" for t in times) + " |", flush=True)


if __name__ == "__main__":
    main()
