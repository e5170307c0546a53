"""MTL-LoRA: golden values, fast path vs reference, init, parameter count, task routing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import samora
from samora import MTLLoRAConfig
from samora.methods.mtllora import MTLLoRALayer
from samora.routing import RoutingState
from tests.helpers import random_layer, tiny_model

D_IN, D_OUT = 6, 5
TASKS = ["a", "b", "c"]


def make_layer(dtype=torch.float64, seed=0, **overrides) -> MTLLoRALayer:
    """An MTL-LoRA layer on a bare linear with every adapter parameter random."""
    return random_layer(
        MTLLoRALayer,
        MTLLoRAConfig(
            **{"r": 3, "num_experts": 4, "alpha": 6.0, "temperature": 0.7, "dropout": 0.0, "tasks": TASKS, **overrides}
        ),
        dtype,
        seed,
    )


@pytest.mark.parametrize("transform", ["full", "diagonal"])
def test_golden_against_float64_equation(transform):
    layer = make_layer(task_transform=transform)
    a, b = layer.mtllora_A.detach().numpy(), layer.mtllora_B.detach().numpy()
    lam, w = layer.mtllora_lambda.detach().numpy(), layer.mtllora_mix.detach().numpy()
    x = torch.randn(3, 2, D_IN, dtype=torch.float64)
    task_ids = torch.tensor([2, 0, 2])
    expected = np.zeros((3, 2, D_OUT))
    for i, t in enumerate(task_ids.tolist()):
        lam_t = lam[t] if transform == "full" else np.diag(lam[t])
        p = np.exp(w[t] / 0.7) / np.exp(w[t] / 0.7).sum()  # softmax(w_t / tau)
        for j in range(2):
            z = lam_t @ (a @ x[i, j].numpy())
            expected[i, j] = (6.0 / 3) * sum(p[k] * (b[k] @ z) for k in range(4))
    assert np.allclose(layer.delta(x, task_ids).detach().numpy(), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(4, D_IN), (4, 7, D_IN), (4, 3, 2, D_IN)])
@pytest.mark.parametrize("transform", ["full", "diagonal"])
def test_fast_path_matches_reference(shape, transform):
    layer = make_layer(torch.float32, seed=1, task_transform=transform)
    x, task_ids = torch.randn(*shape), torch.tensor([1, 0, 2, 1])
    fast, reference = layer.delta(x, task_ids), layer.delta_reference(x, task_ids)
    assert fast.shape == (*shape[:-1], D_OUT)
    assert torch.allclose(fast, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("transform", ["full", "diagonal"])
def test_delta_weight_is_the_update_of_that_task(transform):
    layer = make_layer(torch.float64, seed=4, task_transform=transform)
    x = torch.randn(5, D_IN, dtype=torch.float64)
    for t in range(len(TASKS)):
        dense = layer.delta_weight(t)
        assert dense.shape == (D_OUT, D_IN)
        assert torch.allclose(x @ dense.T, layer.delta(x, torch.full((5,), t)), atol=1e-12, rtol=0)
    with pytest.raises(samora.NotMergeableError, match="depends on the task"):
        layer.delta_weight(None)


@pytest.mark.parametrize("transform", ["full", "diagonal"])
def test_init_starts_at_base(transform):
    config = MTLLoRAConfig(r=3, num_experts=4, tasks=TASKS, task_transform=transform)
    layer = MTLLoRALayer(nn.Linear(D_IN, D_OUT), config, RoutingState())
    layer.reset_parameters()
    assert torch.equal(layer.task_transforms(), torch.eye(3).expand(3, 3, 3))  # Lambda_t = I
    assert torch.count_nonzero(layer.mtllora_B) == 0
    assert layer.mtllora_A.abs().max() <= 1 / D_IN**0.5
    mix = layer.mtllora_mix
    assert mix.abs().max() <= 1 / 4**0.5 and not torch.allclose(mix[0], mix[1])  # random, not uniform
    assert torch.equal(layer.delta(torch.randn(3, 2, D_IN), torch.tensor([0, 1, 2])), torch.zeros(3, 2, D_OUT))


@pytest.mark.parametrize(("d_in", "d_out"), [(6, 5), (32, 96)])
def test_parameter_count_matches_reference_closed_form(d_in, d_out):
    r, n, t = 4, 3, len(TASKS)

    def count(transform):
        config = MTLLoRAConfig(r=r, num_experts=n, tasks=TASKS, task_transform=transform)
        layer = MTLLoRALayer(nn.Linear(d_in, d_out), config, RoutingState())
        return sum(p.numel() for name, p in layer.named_parameters() if name.startswith("mtllora_"))

    assert count("full") == r * d_in + n * r * d_out + t * r * r + t * n  # MTL-LoRA: shared A, N Bs, per-task r x r
    assert count("diagonal") == r * d_in + n * r * d_out + t * r + t * n


def test_mixture_depends_on_the_task_only_and_is_recorded():
    layer = make_layer(torch.float32, seed=2)
    layer.state.record_routing = True
    layer.name = "proj"
    layer.delta(torch.randn(3, 4, D_IN), torch.tensor([0, 1, 0]))
    weights = layer.state.routing["proj"]
    assert weights.shape == (3, 4, 4)
    expected = torch.softmax(layer.mtllora_mix.detach() / 0.7, dim=-1)
    assert torch.allclose(weights[0], expected[0].expand(4, 4)) and torch.allclose(
        weights[1], expected[1].expand(4, 4)
    )
    assert torch.equal(weights[0], weights[2])


def test_task_ids_are_required():
    with pytest.raises(ValueError, match=r"routes by task: give tasks=\[...\]"):
        MTLLoRAConfig()
    layer = make_layer(torch.float32)
    with pytest.raises(ValueError, match="task_ids"):
        layer.delta(torch.randn(2, D_IN), None)
    model = samora.get_model(tiny_model(), MTLLoRAConfig(r=2, tasks=TASKS))
    ids = torch.randint(3, 64, (2, 4))
    with pytest.raises(ValueError, match="needs task_ids"):
        model(ids)
    with pytest.raises(ValueError, match="cannot route an unseen task"):
        model(ids, task_ids=[0, -1])


def test_invalid_options_name_the_field():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        MTLLoRAConfig(tasks=TASKS, temperature=0)
    with pytest.raises(ValueError, match="task_transform must be 'full' or 'diagonal'"):
        MTLLoRAConfig(tasks=TASKS, task_transform="lowrank")


def step_flops(layer: MTLLoRALayer, x: torch.Tensor, task_ids: torch.Tensor) -> int:
    """Matmul FLOPs of one forward + backward of the layer's update (torch's FLOP counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        layer.delta(x, task_ids).square().sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("transform", ["full", "diagonal"])
def test_cost_follows_the_batch_tasks_not_the_configured_ones(transform):
    x, task_ids = torch.randn(4, 3, D_IN), torch.tensor([0, 2, 0, 1])
    flops = []
    for num_tasks in (3, 300, 10_000):
        layer = make_layer(dtype=torch.float32, task_transform=transform, tasks=[f"t{i}" for i in range(num_tasks)])
        flops.append(step_flops(layer, x, task_ids))
    assert flops[0] > 0 and flops == [flops[0]] * 3


@pytest.mark.parametrize("transform", ["full", "diagonal"])
def test_distinct_task_path_matches_the_all_tasks_path(transform):
    """The update and its gradients equal those of M = task_matrices() for all T tasks, indexed per example."""
    layer = make_layer(task_transform=transform, tasks=[f"t{i}" for i in range(50)])
    x, task_ids = torch.randn(5, 4, D_IN, dtype=torch.float64), torch.tensor([17, 3, 49, 3, 0])
    results = []
    for path in ("distinct", "all"):
        layer.zero_grad()
        if path == "distinct":
            out = layer.delta(x, task_ids)
        else:
            out = (
                torch.bmm(x @ layer.mtllora_A.T, layer.task_matrices()[task_ids].transpose(1, 2))
                * layer.config.scaling
            )
        out.square().sum().backward()
        results.append(
            [out.detach(), *[p.grad.clone() for n, p in layer.named_parameters() if n.startswith("mtllora_")]]
        )
    for distinct, everything in zip(*results):
        assert torch.allclose(distinct, everything, atol=1e-12, rtol=1e-12)
    assert results[0][-1].abs().sum() > 0  # the mixture logits got a gradient


def test_generate_keeps_the_row_task_matrices_for_the_call():
    layer = make_layer(dtype=torch.float32)
    layer.state.constants = {}
    x, task_ids = torch.randn(2, 1, D_IN), torch.tensor([2, 0])
    with torch.no_grad():
        first = layer.delta(x, task_ids)
        layer.mtllora_B.mul_(2)  # cannot happen inside generate; shows the matrices were kept
        assert torch.equal(layer.delta(x, task_ids), first)
