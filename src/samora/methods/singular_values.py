"""The top-k singular values of a frozen weight, for SAMoRA's S initialisation (eq. 5).

Two paths, both on the weight's own device:

- exact: ``torch.linalg.svdvals`` when the smaller side is at most ``exact_max_side`` (1024 by
  default: every SmolLM2 projection, and an 8B model's 4096 x 1024 k/v projections), O(m n^2);
- randomized block Krylov iteration (Musco & Musco, NeurIPS 2015) above that (an 8B model's
  4096 x 4096 q/o projections), where the exact values cost O(n^3) per module.

Why Krylov and not ``torch.svd_lowrank``: its subspace (power) iteration converges like
(sigma_{q+1} / sigma_k)^(2 niter), which on the nearly flat top spectra of attention weights is
close to 1 (6 iterations left 1-4% errors); a Krylov space of the same depth converges with the square
root of that gap. What ``benchmarks/svd_init.py`` measured (``benchmarks/results/svd_init_cpu.md``;
the worst case: Gaussian matrices, whose top spectrum is flatter than a trained weight's): depth 16
with q = k + max(16, k) columns gives at most 6.1e-6 relative error on 4096 x 4096 at k = 8 and 16,
in 1.2-1.3 s on one CPU thread (exact values: 15.8 s)."""

from __future__ import annotations

import torch

EXACT_MAX_SIDE = 1024  # smaller side up to which the exact values are computed
KRYLOV_DEPTH = 16  # Krylov blocks after the first: W Omega, (W W^T) W Omega, ..., (W W^T)^16 W Omega


def top_singular_values(
    weight: torch.Tensor, k: int, *, exact_max_side: int = EXACT_MAX_SIDE, depth: int = KRYLOV_DEPTH
) -> torch.Tensor:
    """The k largest singular values of ``weight`` (d_out, d_in), descending: (k,).

    Computed in float32 (float64 for a float64 weight) on the weight's device. Exact when
    min(d_out, d_in) <= ``exact_max_side`` or when the Krylov space would span the whole smaller side;
    otherwise :func:`block_krylov_singular_values`. A shape with fewer than k singular values is
    padded with zeros.
    """
    matrix = weight.detach()
    matrix = matrix.double() if matrix.dtype == torch.float64 else matrix.float()
    q = k + max(16, k)
    if min(matrix.shape) <= max(exact_max_side, q * (depth + 1)):
        values = torch.linalg.svdvals(matrix)
    else:
        values = block_krylov_singular_values(matrix, k, q=q, depth=depth)
    if values.numel() < k:
        values = torch.cat([values, values.new_zeros(k - values.numel())])
    return values[:k]


def block_krylov_singular_values(matrix: torch.Tensor, k: int, *, q: int, depth: int) -> torch.Tensor:
    """Top-k singular values of ``matrix`` (m, n) from the Krylov space of a random (n, q) block.

    Semantics: with W oriented so that m <= n and Omega ~ N(0, 1)^(n x q), Q = an orthonormal basis
    of [W Omega, (W W^T) W Omega, ..., (W W^T)^depth W Omega] (m, q (depth + 1)); the result is
    ``svdvals(Q^T W)[:k]``. Each new block is orthogonalised against the basis twice (classical
    Gram-Schmidt, repeated: float32 loses orthogonality after one pass) and then by QR.
    Cost: (2 depth + 2) matmuls of W with q (depth + 1) columns at most, O(m n q depth).
    Requires q (depth + 1) < min(m, n) (else the space is the whole side: use the exact values).
    """
    w = matrix.T if matrix.shape[0] > matrix.shape[1] else matrix  # (m, n), m <= n
    generator = torch.Generator(device=w.device).manual_seed(0)  # S init is reproducible
    omega = torch.randn(w.shape[1], q, generator=generator, device=w.device, dtype=w.dtype)
    block = torch.linalg.qr(w @ omega).Q  # (m, q)
    basis = block
    for _ in range(depth):
        block = w @ (w.T @ block)
        for _ in range(2):
            block = block - basis @ (basis.T @ block)
        block = torch.linalg.qr(block).Q
        basis = torch.cat([basis, block], dim=1)
    return torch.linalg.svdvals(basis.T @ w)[:k]
