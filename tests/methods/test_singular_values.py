"""SAMoRA's S initialisation: the top-r singular values within 1e-4 of the exact ones."""

from __future__ import annotations

import pytest
import torch

from samora.methods.singular_values import block_krylov_singular_values, top_singular_values


def gaussian(*shape: int, seed: int = 0) -> torch.Tensor:
    """The hard case: a Gaussian matrix's top spectrum is nearly flat (sigma_k / sigma_{2k} ~ 1)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) / shape[1] ** 0.5


def relative_error(values: torch.Tensor, exact: torch.Tensor) -> float:
    return ((values - exact) / exact).abs().max().item()


@pytest.mark.parametrize("shape,k", [((768, 640), 8), ((640, 768), 16)])
def test_krylov_path_is_within_1e4_on_a_flat_spectrum(shape, k):
    weight = gaussian(*shape)
    exact = torch.linalg.svdvals(weight).double()[:k]  # float32 LAPACK: ~1e-6 relative on the top values
    values = top_singular_values(weight, k, exact_max_side=0)  # force the Krylov path
    assert values.dtype == torch.float32 and values.shape == (k,)
    assert relative_error(values.double(), exact) < 1e-4
    # six power iterations (what S init used before) were ~1e-2 off here: the test can fail
    _, lowrank, _ = torch.svd_lowrank(weight, q=k + max(16, k), niter=6)
    assert relative_error(lowrank[:k].double(), exact) > 1e-3


def test_exact_path_up_to_the_threshold_and_shapes_of_smollm2():
    for shape in ((576, 576), (192, 576)):
        weight = gaussian(*shape)
        assert torch.equal(top_singular_values(weight, 8), torch.linalg.svdvals(weight)[:8])


def test_float64_weight_gets_float64_values_and_small_shapes_pad_with_zeros():
    weight = gaussian(700, 600).double()
    values = top_singular_values(weight, 8, exact_max_side=0)
    assert values.dtype == torch.float64
    assert relative_error(values, torch.linalg.svdvals(weight)[:8]) < 1e-8
    padded = top_singular_values(gaussian(3, 5), 6)
    assert padded.shape == (6,) and torch.equal(padded[3:], torch.zeros(3)) and (padded[:3] > 0).all()


def test_krylov_is_deterministic_and_leaves_the_global_generator_alone():
    weight = gaussian(700, 600)
    state = torch.get_rng_state()
    first = block_krylov_singular_values(weight, 8, q=24, depth=16)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, block_krylov_singular_values(weight, 8, q=24, depth=16))
