"""MultiLoRA: golden values, fast path vs reference, zero-init scaling, parameter count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from samora import MultiLoRAConfig
from samora.methods.multilora import MultiLoRALayer
from samora.routing import RoutingState
from tests.helpers import random_layer

D_IN, D_OUT = 6, 5


def make_layer(dtype=torch.float64, seed=0, **overrides) -> MultiLoRALayer:
    """A MultiLoRA layer (3 LoRAs of rank 2) with every adapter parameter random, scales included."""
    return random_layer(
        MultiLoRALayer,
        MultiLoRAConfig(**{"r": 2, "num_experts": 3, "alpha": 4.0, "dropout": 0.0, **overrides}),
        dtype,
        seed,
    )


def test_golden_against_float64_equation():
    layer = make_layer()
    a, b = layer.multilora_A.detach().numpy(), layer.multilora_B.detach().numpy()
    s = layer.multilora_scale.detach().numpy()
    x = torch.randn(2, 3, D_IN, dtype=torch.float64)
    expected = np.zeros((2, 3, D_OUT))
    for i in range(2):
        for j in range(3):
            v = x[i, j].numpy()
            expected[i, j] = (4.0 / 2) * sum(s[k] * (b[k] @ (a[k] @ v)) for k in range(3))  # elementwise s_i
    assert np.allclose(layer.delta(x, None).detach().numpy(), expected, atol=1e-12, rtol=0)
    assert np.allclose((x.numpy() @ layer.delta_weight().detach().numpy().T), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(4, D_IN), (2, 7, D_IN), (2, 3, 2, D_IN)])
def test_fast_path_matches_reference(shape):
    layer = make_layer(torch.float32, seed=1)
    x = torch.randn(*shape)
    fast, reference = layer.delta(x, None), layer.delta_reference(x, None)
    assert fast.shape == (*shape[:-1], D_OUT)
    assert torch.allclose(fast, reference, atol=1e-5, rtol=1e-5)


def test_zero_scales_make_init_equal_base_although_a_and_b_are_random():
    torch.manual_seed(0)
    r = 4
    layer = MultiLoRALayer(nn.Linear(D_IN, D_OUT), MultiLoRAConfig(r=r, num_experts=3), RoutingState())
    layer.reset_parameters()
    assert torch.count_nonzero(layer.multilora_scale) == 0
    for a, b in zip(layer.multilora_A, layer.multilora_B):  # kaiming-uniform per LoRA: bound 1/sqrt(fan_in)
        assert torch.count_nonzero(a) == a.numel() and 0.5 / D_IN**0.5 < a.abs().max() <= 1 / D_IN**0.5
        assert torch.count_nonzero(b) == b.numel() and 0.5 / r**0.5 < b.abs().max() <= 1 / r**0.5
    assert not torch.allclose(layer.multilora_A[0], layer.multilora_A[1])
    x = torch.randn(2, 5, D_IN)
    assert torch.equal(layer.delta(x, None), torch.zeros(2, 5, D_OUT))
    # At init only the scales receive a gradient (A and B are multiplied by s = 0).
    layer.delta(x, None).sum().backward()
    assert layer.multilora_scale.grad.abs().sum() > 0
    assert torch.count_nonzero(layer.multilora_A.grad) == 0 and torch.count_nonzero(layer.multilora_B.grad) == 0


@pytest.mark.parametrize(("d_in", "d_out"), [(6, 5), (32, 96)])
def test_parameter_count_matches_reference_closed_form(d_in, d_out):
    r, n = 4, 3
    layer = MultiLoRALayer(nn.Linear(d_in, d_out), MultiLoRAConfig(r=r, num_experts=n), RoutingState())
    count = sum(p.numel() for name, p in layer.named_parameters() if name.startswith("multilora_"))
    assert count == n * (r * (d_in + d_out) + d_out)  # MultiLoRA's paper: N LoRAs plus N scale vectors


def test_scales_act_per_output_feature():
    layer = make_layer(torch.float64, seed=2)
    x = torch.randn(4, D_IN, dtype=torch.float64)
    before = layer.delta(x, None)
    with torch.no_grad():
        layer.multilora_scale[:, 1] = 0.0  # silence output feature 1 in every LoRA
    after = layer.delta(x, None)
    assert torch.equal(after[:, 1], torch.zeros(4, dtype=torch.float64))
    keep = [0, 2, 3, 4]
    assert torch.allclose(after[:, keep], before[:, keep], atol=1e-12, rtol=0)
