"""SAMoRA's S initialisation: time per module and error of the top-k singular values.

What is measured, per weight shape (d_out x d_in) and k (the rank r):
- ``time``: wall time of one ``top_singular_values(W, k)`` call (the S init of one module), the
  minimum over ``--repeats`` calls after one warm-up, on ``--device`` (CUDA calls synchronised);
- ``exact time``: one ``torch.linalg.svdvals`` of the same W, for scale;
- ``error``: max_j |s_j - sigma_j| / sigma_j over the top k, sigma from that exact float64 SVD
  (float32 on CUDA).
W is Gaussian (the worst case: its top spectrum is flatter than a trained weight's), or, with
``--smollm2``, also SmolLM2-135M's real layer-29 v_proj. The last line estimates one 8B-like model's
(32 layers of q/o 4096 x 4096 and k/v 1024 x 4096) S init from the measured times.

    python benchmarks/svd_init.py [--device cpu|cuda] [--threads N] [--repeats 3] [--smollm2]
    python benchmarks/svd_init.py --shapes 64x48,32x64 --ks 4      # a tiny run
"""

from __future__ import annotations

import argparse
import time

import torch

from samora.methods.singular_values import top_singular_values

SHAPES = "576x576,192x576,4096x4096,1024x4096"  # SmolLM2 q/o and k/v; an 8B model's q/o and k/v
EIGHT_B = {(4096, 4096): 64, (1024, 4096): 64}  # modules of each shape in 32 layers of q/k/v/o


def wall_s(step, repeats: int, device: torch.device) -> float:
    def timed() -> float:
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed()
    return min(timed() for _ in range(repeats))


def measure(name: str, weight: torch.Tensor, ks: list[int], repeats: int) -> list[dict]:
    device = weight.device
    reference = weight.double() if device.type == "cpu" else weight.float()
    exact_s = wall_s(lambda: torch.linalg.svdvals(weight.float()), 1, device)
    exact = torch.linalg.svdvals(reference).double()
    rows = []
    for k in ks:
        values = top_singular_values(weight, k).double()
        error = ((values - exact[:k]) / exact[:k]).abs().max().item()
        seconds = wall_s(lambda: top_singular_values(weight, k), repeats, device)
        rows.append(
            {
                "weight": name,
                "shape": tuple(weight.shape),
                "k": k,
                "time_s": seconds,
                "exact_time_s": exact_s,
                "error": error,
            }
        )
    return rows


def weights(shapes: str, smollm2: bool, device: torch.device):
    generator = torch.Generator().manual_seed(0)
    for text in shapes.split(","):
        d_out, d_in = (int(v) for v in text.lower().split("x"))
        yield f"Gaussian {d_out}x{d_in}", (torch.randn(d_out, d_in, generator=generator) / d_in**0.5).to(device)
    if smollm2:
        from samora.models.smollm2 import load_smollm2

        model, _ = load_smollm2()
        yield "SmolLM2 layers.29.v_proj", model.model.layers[29].self_attn.v_proj.weight.detach().float().to(device)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shapes", default=SHAPES, help="comma-separated d_out x d_in, e.g. 576x576,1024x4096")
    parser.add_argument("--ks", default="8,16", help="comma-separated k (the SAMoRA rank r)")
    parser.add_argument("--smollm2", action="store_true", help="also SmolLM2-135M's real layer-29 v_proj")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ks = [int(k) for k in args.ks.split(",")]
    print(f"device={device}, threads={torch.get_num_threads()}, min wall time of {args.repeats}\n")
    print("| weight | k | S init time (s) | exact svdvals time (s) | max rel. error |\n|---|---|---|---|---|")
    rows = []
    for name, weight in weights(args.shapes, args.smollm2, device):
        for row in measure(name, weight, ks, args.repeats):
            rows.append(row)
            print(
                f"| {name} | {row['k']} | {row['time_s']:.4f} | {row['exact_time_s']:.4f} | {row['error']:.1e} |",
                flush=True,
            )
    for k in ks:
        times = {row["shape"]: row["time_s"] for row in rows if row["k"] == k and row["weight"].startswith("Gaussian")}
        if all(shape in times for shape in EIGHT_B):
            total = sum(count * times[shape] for shape, count in EIGHT_B.items())
            print(f"\n8B-like model (32 layers, q/k/v/o), k={k}: S init about {total:.1f} s in all")
    return rows


if __name__ == "__main__":
    main()
