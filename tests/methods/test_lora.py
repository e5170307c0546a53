"""LoRA: golden values against the float64 equation, init, merge weight, parameter count."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from samora import LoRAConfig
from samora.methods.lora import LoRALayer
from samora.routing import RoutingState

D_IN, D_OUT, R = 6, 5, 2


def make_layer(dtype=torch.float64, seed=0, **overrides) -> LoRALayer:
    """A LoRA layer of rank 2 with A and B random (B is zero at init)."""
    torch.manual_seed(seed)
    config = LoRAConfig(**{"r": R, "alpha": 6.0, "dropout": 0.0, **overrides})
    layer = LoRALayer(nn.Linear(D_IN, D_OUT).to(dtype), config, RoutingState(), adapter_dtype=dtype)
    with torch.no_grad():
        for parameter in (layer.lora_A, layer.lora_B):
            parameter.normal_()
    return layer.eval()


def test_golden_against_float64_equation():
    """y = W x + b + (alpha / r) B A x, computed per token in numpy."""
    layer = make_layer()
    a, b = layer.lora_A.detach().numpy(), layer.lora_B.detach().numpy()
    w, bias = layer.base_layer.weight.detach().numpy(), layer.base_layer.bias.detach().numpy()
    x = torch.randn(2, 3, D_IN, dtype=torch.float64)
    expected = np.stack([[w @ v + bias + (6.0 / R) * (b @ (a @ v)) for v in row] for row in x.numpy()])
    assert np.allclose(layer(x).detach().numpy(), expected, atol=1e-12, rtol=0)
    assert np.allclose(layer.delta_weight().detach().numpy(), (6.0 / R) * b @ a, atol=1e-12, rtol=0)


def test_init_is_kaiming_a_and_zero_b():
    torch.manual_seed(0)
    layer = LoRALayer(nn.Linear(D_IN, D_OUT), LoRAConfig(r=4), RoutingState())
    layer.reset_parameters()
    assert torch.count_nonzero(layer.lora_B) == 0
    assert 0.5 / math.sqrt(D_IN) < layer.lora_A.abs().max() <= 1 / math.sqrt(D_IN)
    x = torch.randn(3, D_IN)
    assert torch.equal(layer(x), layer.base_layer(x))


def test_parameter_count_is_r_times_d_in_plus_d_out():
    layer = make_layer()
    assert sum(p.numel() for n, p in layer.named_parameters() if n.startswith("lora_")) == R * (D_IN + D_OUT)
