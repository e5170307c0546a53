"""MoELoRA: golden values, fast path vs reference, init, parameter count, rank split, task gate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import samora
from samora import MoELoRAConfig
from samora.methods.moelora import MoELoRALayer
from samora.routing import RoutingState
from tests.helpers import random_layer

D_IN, D_OUT = 6, 5
TASKS = ["a", "b", "c"]


def make_layer(dtype=torch.float64, seed=0, **overrides) -> MoELoRALayer:
    """A MoELoRA layer (r = 6 over 3 experts of rank 2) with every adapter parameter random."""
    return random_layer(
        MoELoRALayer,
        MoELoRAConfig(
            **{"r": 6, "num_experts": 3, "alpha": 12.0, "task_dim": 4, "dropout": 0.0, "tasks": TASKS, **overrides}
        ),
        dtype,
        seed,
    )


def test_golden_against_float64_equation():
    layer = make_layer()
    a, b = layer.moelora_A.detach().numpy(), layer.moelora_B.detach().numpy()  # (E, k, d_in), (E, d_out, k)
    e_t, w_g = layer.moelora_task_embedding.detach().numpy(), layer.moelora_gate.detach().numpy()
    x = torch.randn(3, 2, D_IN, dtype=torch.float64)
    task_ids = torch.tensor([1, 1, 0])
    expected = np.zeros((3, 2, D_OUT))
    for i, t in enumerate(task_ids.tolist()):
        logits = w_g @ e_t[t]
        w = np.exp(logits) / np.exp(logits).sum()  # softmax(W_g e_t)
        for j in range(2):
            v = x[i, j].numpy()
            expected[i, j] = (12.0 / 6) * sum(w[k] * (b[k] @ (a[k] @ v)) for k in range(3))
    assert np.allclose(layer.delta(x, task_ids).detach().numpy(), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(4, D_IN), (4, 7, D_IN), (4, 3, 2, D_IN)])
def test_fast_path_matches_reference(shape):
    layer = make_layer(torch.float32, seed=1)
    x, task_ids = torch.randn(*shape), torch.tensor([2, 0, 1, 2])
    fast, reference = layer.delta(x, task_ids), layer.delta_reference(x, task_ids)
    assert fast.shape == (*shape[:-1], D_OUT)
    assert torch.allclose(fast, reference, atol=1e-5, rtol=1e-5)


def test_delta_weight_is_the_update_of_that_task():
    layer = make_layer(seed=4)
    x = torch.randn(5, D_IN, dtype=torch.float64)
    for t in range(len(TASKS)):
        assert torch.allclose(x @ layer.delta_weight(t).T, layer.delta(x, torch.full((5,), t)), atol=1e-12, rtol=0)
    with pytest.raises(samora.NotMergeableError, match="depends on the task"):
        layer.delta_weight(None)


def test_init_starts_at_base():
    torch.manual_seed(0)
    layer = MoELoRALayer(nn.Linear(512, D_OUT), MoELoRAConfig(r=16, num_experts=4, tasks=TASKS), RoutingState())
    layer.reset_parameters()
    assert layer.moelora_A.shape == (4, 4, 512) and layer.moelora_B.shape == (4, D_OUT, 4)
    assert 0.009 < layer.moelora_A.std().item() < 0.011  # N(0, 0.01^2), 8192 draws
    assert torch.count_nonzero(layer.moelora_B) == 0
    assert 0.8 < layer.moelora_task_embedding.std().item() < 1.2  # N(0, 1), 3 x 64 draws
    assert layer.moelora_gate.abs().max() <= 1 / 64**0.5  # kaiming-uniform over d_te = 64
    assert torch.equal(layer.delta(torch.randn(3, 2, 512), torch.tensor([0, 1, 2])), torch.zeros(3, 2, D_OUT))


@pytest.mark.parametrize(("d_in", "d_out"), [(6, 5), (32, 96)])
def test_parameter_count_is_reference_minus_the_unused_task_row(d_in, d_out):
    r, e, d_te, t = 8, 4, 16, len(TASKS)
    config = MoELoRAConfig(r=r, num_experts=e, task_dim=d_te, tasks=TASKS)
    layer = MoELoRALayer(nn.Linear(d_in, d_out), config, RoutingState())
    count = sum(p.numel() for name, p in layer.named_parameters() if name.startswith("moelora_"))
    reference = r * (d_in + d_out) + (t + 1) * d_te + d_te * e  # the released code's count (methods/moelora.py)
    assert count == reference - d_te  # the released code's row 0 is never read (1-based task ids)
    lora_part = layer.moelora_A.numel() + layer.moelora_B.numel()
    assert lora_part == r * (d_in + d_out)  # the experts together are exactly one rank-r LoRA


def test_rank_must_divide_over_the_experts():
    with pytest.raises(ValueError, match=r"r must be divisible by num_experts .* got r=10"):
        MoELoRAConfig(r=10, num_experts=4, tasks=TASKS)
    assert MoELoRAConfig(r=12, num_experts=4, tasks=TASKS).r == 12


def test_gate_depends_on_the_task_only_and_is_recorded():
    layer = make_layer(torch.float32, seed=2)
    layer.state.record_routing = True
    layer.name = "proj"
    layer.delta(torch.randn(3, 4, D_IN), torch.tensor([2, 2, 1]))
    weights = layer.state.routing["proj"]
    assert weights.shape == (3, 4, 3)
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[0, 0], weights[0, 3])
    gate = torch.softmax(layer.moelora_task_embedding @ layer.moelora_gate.T, dim=-1).detach()
    assert torch.allclose(weights[2, 0], gate[1])


def test_task_ids_are_required():
    with pytest.raises(ValueError, match=r"routes by task: give tasks=\[...\]"):
        MoELoRAConfig()
    with pytest.raises(ValueError, match="task_ids"):
        make_layer(torch.float32).delta(torch.randn(2, D_IN), None)
