"""Where SMoRA's sparse path beats the dense one: CPU time of one layer, forward + backward.

Both paths of ``SMoRALayer.delta`` compute the same update (``compute="dense"``: gates scattered
into a rank-r vector, two rank-r matmuls; ``compute="sparse"``: only the k chosen columns of B per
token, via ``embedding_bag``). This sweeps d, r and k and prints the sparse / dense time ratio;
the inference crossover sets ``SPARSE_BELOW_SHARE`` in samora/methods/smora.py (training always takes dense).

    python benchmarks/smora_dispatch.py [--threads 1] [--tokens 2048] [--dims 576,2048] [--ranks 16,64,256,512]

Times are the minimum thread CPU time over repeats, so that other load on a shared machine does not
blur them (with --threads 1 the work runs on the calling thread); results/smora_dispatch_cpu.md
holds a committed run.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from samora.methods.smora import SMoRAConfig, SMoRALayer
from samora.routing import RoutingState


def cpu_ms(step, repeats: int) -> float:
    step()
    step()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        step()
        times.append(time.thread_time() - start)
    return 1e3 * min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dims", default="576,2048", help="comma-separated d_in = d_out values")
    parser.add_argument("--ranks", default="16,64,256", help="comma-separated r values (e.g. 64,256,512)")
    parser.add_argument("--top-k", default="1,2,4,8,16,32", help="comma-separated k values (k <= r/2 kept)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"CPU, threads={args.threads}, tokens={args.tokens}, float32, min thread time of {args.repeats}\n")
    print(
        "| d_in = d_out | r | k | k/r | train dense (ms) | train sparse (ms) | sparse/dense | "
        "infer dense (ms) | infer sparse (ms) | sparse/dense |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in (int(v) for v in args.dims.split(",")):
        x = torch.randn(args.tokens, d)
        for r in (int(v) for v in args.ranks.split(",")):
            for k in (int(v) for v in args.top_k.split(",")):
                if k > r // 2:
                    continue
                layer = SMoRALayer(nn.Linear(d, d), SMoRAConfig(r=r, top_k=k, dropout=0.0), RoutingState())
                layer.reset_parameters()
                nn.init.normal_(layer.smora_B)
                row = []
                for mode in ("dense", "sparse"):
                    layer.config.compute = mode
                    row.append(cpu_ms(lambda: layer.delta(x, None).square().mean().backward(), args.repeats))
                for mode in ("dense", "sparse"):
                    layer.config.compute = mode
                    with torch.no_grad():
                        row.append(cpu_ms(lambda: layer.delta(x, None), args.repeats))
                print(
                    f"| {d} | {r} | {k} | {k / r:.3f} | {row[0]:.1f} | {row[1]:.1f} | {row[1] / row[0]:.2f} | "
                    f"{row[2]:.1f} | {row[3]:.1f} | {row[3] / row[2]:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
