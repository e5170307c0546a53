"""What an exact-at-init MoORE would cost: CPU time of one layer, forward + backward.

``MoORELayer.forward`` computes ``U (w * V^T H x) + b`` as the released code does, equal to W x + b
at init up to the SVD's round-off. ``W (H x) + b + U ((w - s) * V^T H x)`` is the same function
and lets the frozen W carry the bulk, so at init only the paired reflections' round-off remains,
at the price of one more (d_out x d_in)-sized matmul. This times both, and the frozen linear alone
for scale.

    python benchmarks/moore_paths.py [--threads 1] [--tokens 2048]

Times are the minimum thread CPU time over repeats (see smora_dispatch.py); results/moore_paths_cpu.md
holds a committed run.
"""

from __future__ import annotations

import argparse

import torch
from smora_dispatch import cpu_ms
from torch import nn

from samora.methods.moore import MoOREConfig, MoORELayer
from samora.routing import RoutingState


def residual_form(layer: MoORELayer, x: torch.Tensor) -> torch.Tensor:
    """The same function as ``layer(x)``, as W (H x) + b + U ((w - s) * V^T H x)."""
    shift = layer.router_shift(x, layer.state.task_ids)
    rotated = layer.rotate(x)
    correction = ((rotated @ layer.moore_V) * torch.maximum(shift, -layer.moore_S)) @ layer.moore_U.T
    return layer.base_layer(rotated) + correction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"CPU, threads={args.threads}, tokens={args.tokens}, float32, min thread time of {args.repeats}, "
        "r=8 reflections, E=128, d_te=64\n"
    )
    print(
        "| d_in x d_out | frozen linear (ms) | layer: U (w * V^T H x) + b (ms) | W H x + b + correction (ms) "
        "| correction form / layer | max rel. diff |"
    )
    print("|---|---|---|---|---|---|")
    for d_in, d_out in ((576, 576), (576, 1536), (2048, 2048)):
        x = torch.randn(args.tokens, d_in, requires_grad=True)  # as inside a model: x needs its gradient
        base = nn.Linear(d_in, d_out).requires_grad_(False)
        layer = MoORELayer(base, MoOREConfig(tasks=["a", "b"]), RoutingState())
        layer.reset_parameters()
        with torch.no_grad():  # move off init so that the correction is not zero
            layer.moore_router_up.normal_(0, 0.01)
            layer.moore_householder.add_(0.1 * torch.randn_like(layer.moore_householder))
        layer.state.task_ids = torch.zeros(args.tokens, dtype=torch.long)
        ours, other = layer(x), residual_form(layer, x)
        diff = ((ours - other).abs().max() / ours.abs().max()).item()
        frozen = cpu_ms(lambda: base(x).square().mean().backward(), args.repeats)
        times = [
            cpu_ms(lambda f=f: f(x).square().mean().backward(), args.repeats)
            for f in (layer, lambda v: residual_form(layer, v))
        ]
        print(
            f"| {d_in} x {d_out} | {frozen:.1f} | {times[0]:.1f} | {times[1]:.1f} | {times[1] / times[0]:.2f} "
            f"| {diff:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
