"""HydraLoRA: golden values, fast path vs reference, init, parameter count, routing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from samora import HydraLoRAConfig
from samora.methods.hydralora import HydraLoRALayer
from samora.routing import RoutingState
from tests.helpers import random_layer

D_IN, D_OUT = 6, 5


def make_layer(dtype=torch.float64, seed=0, **overrides) -> HydraLoRALayer:
    """A HydraLoRA layer on a bare linear, every adapter parameter random (so nothing is trivially 0)."""
    return random_layer(
        HydraLoRALayer,
        HydraLoRAConfig(**{"r": 3, "num_experts": 4, "alpha": 6.0, "dropout": 0.0, **overrides}),
        dtype,
        seed,
    )


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("router", ["linear", "mlp"])
def test_golden_against_float64_equation(router):
    layer = make_layer(router=router, router_hidden=7)
    a, b = layer.hydralora_A.detach().numpy(), layer.hydralora_B.detach().numpy()
    r_out = layer.hydralora_router.detach().numpy()
    x = torch.randn(2, 3, D_IN, dtype=torch.float64)
    expected = np.zeros((2, 3, D_OUT))
    for i in range(2):
        for j in range(3):
            v = x[i, j].numpy()
            features = np.maximum(layer.hydralora_router_hidden.detach().numpy() @ v, 0) if router == "mlp" else v
            g = softmax(r_out @ features)  # eq.: softmax(R x)
            expected[i, j] = (6.0 / 3) * sum(g[k] * (b[k] @ (a @ v)) for k in range(4))
    assert np.allclose(layer.delta(x, None).detach().numpy(), expected, atol=1e-12, rtol=0)
    with torch.no_grad():
        base = layer.base_layer(x)
    assert np.allclose(layer(x).detach().numpy(), (base.numpy() + expected), atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(4, D_IN), (2, 7, D_IN), (2, 3, 2, D_IN)])
@pytest.mark.parametrize("router", ["linear", "mlp"])
def test_fast_path_matches_reference(shape, router):
    layer = make_layer(torch.float32, seed=1, router=router)
    x = torch.randn(*shape)
    fast, reference = layer.delta(x, None), layer.delta_reference(x, None)
    assert fast.shape == (*shape[:-1], D_OUT)
    assert torch.allclose(fast, reference, atol=1e-5, rtol=1e-5)


def test_init_starts_at_base_and_shapes():
    layer = HydraLoRALayer(nn.Linear(D_IN, D_OUT), HydraLoRAConfig(r=3, num_experts=4), RoutingState())
    layer.reset_parameters()
    assert layer.hydralora_A.shape == (3, D_IN) and layer.hydralora_B.shape == (4, D_OUT, 3)
    assert layer.hydralora_router.shape == (4, D_IN)
    assert torch.count_nonzero(layer.hydralora_B) == 0
    assert torch.count_nonzero(layer.hydralora_A) == layer.hydralora_A.numel()
    assert layer.hydralora_A.abs().max() <= 1 / D_IN**0.5  # kaiming-uniform(a=sqrt 5) bound
    assert torch.count_nonzero(layer.hydralora_router) == layer.hydralora_router.numel()
    x = torch.randn(2, 5, D_IN)
    assert torch.equal(layer.delta(x, None), torch.zeros(2, 5, D_OUT))


@pytest.mark.parametrize(("d_in", "d_out"), [(6, 5), (32, 96), (64, 16)])
def test_parameter_count_matches_reference_closed_form(d_in, d_out):
    r, n, hidden = 4, 3, 8
    linear = HydraLoRALayer(nn.Linear(d_in, d_out), HydraLoRAConfig(r=r, num_experts=n), RoutingState())
    mlp = HydraLoRALayer(
        nn.Linear(d_in, d_out), HydraLoRAConfig(r=r, num_experts=n, router="mlp", router_hidden=hidden), RoutingState()
    )

    def adapter_count(layer):
        return sum(p.numel() for name, p in layer.named_parameters() if name.startswith("hydralora_"))

    assert adapter_count(linear) == r * d_in + n * r * d_out + n * d_in  # HydraLoRA's paper: shared A, N B's, router
    assert adapter_count(mlp) == r * d_in + n * r * d_out + hidden * (d_in + n)


def test_router_depends_on_the_token_and_is_recorded():
    layer = make_layer(torch.float32, seed=2)
    layer.state.record_routing = True
    layer.name = "proj"
    x = torch.randn(2, 5, D_IN)
    layer.delta(x, None)
    weights = layer.state.routing["proj"]
    assert weights.shape == (2, 5, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 5))
    assert not torch.allclose(weights[0, 0], weights[0, 1])  # token-level routing


def test_task_ids_are_ignored():
    layer = make_layer(torch.float32, seed=3)
    x = torch.randn(3, 4, D_IN)
    assert not HydraLoRAConfig.uses_task
    assert torch.equal(layer.delta(x, torch.tensor([0, 1, 2])), layer.delta(x, None))


def test_invalid_router_options_name_the_field():
    with pytest.raises(ValueError, match="router must be 'linear' or 'mlp'"):
        HydraLoRAConfig(router="cosine")
    with pytest.raises(
        ValueError, match=r"router_hidden \(hidden width of the MLP router\) must be a positive int, got 0"
    ):
        HydraLoRAConfig(router="mlp", router_hidden=0)


@pytest.mark.parametrize("router_input", ["dropout", "input"])
def test_router_input_switch_routes_on_x_or_on_dropout_x(router_input):
    """Training mode, dropout 0.5: A always sees dropout(x); the router sees x only with "input"."""
    layer = make_layer(router_input=router_input, dropout=0.5).train()
    assert HydraLoRAConfig().router_input == "dropout"  # the stated default
    x = torch.randn(2, 3, D_IN, dtype=torch.float64)
    torch.manual_seed(7)
    got = layer(x)
    torch.manual_seed(7)
    dropped = nn.functional.dropout(x, 0.5, training=True)  # the same mask as the layer's
    routed = x if router_input == "input" else dropped
    p = {k: v.detach() for k, v in layer.named_parameters()}
    gates = torch.softmax(routed @ p["hydralora_router"].T, dim=-1)
    heads = torch.stack([(dropped @ p["hydralora_A"].T) @ b.T for b in p["hydralora_B"]], dim=-2)
    expected = layer.base_layer(x) + 2.0 * (gates.unsqueeze(-1) * heads).sum(-2)
    assert torch.allclose(got, expected, atol=1e-12, rtol=0)
    assert not torch.allclose(got, layer.eval()(x))  # dropout really acted


def test_router_input_must_be_known():
    with pytest.raises(ValueError, match="router_input"):
        HydraLoRAConfig(router_input="clean")
