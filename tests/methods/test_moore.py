"""MoORE: golden values, fast vs reference path, Householder algebra, init, task routing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import samora
from samora.adapter_files import adapter_state_dict
from samora.inject import adapter_of
from samora.methods.moore import MoOREConfig, MoORELayer, householder_product
from samora.routing import RoutingState
from tests.helpers import LargestTensor, tiny_model

D_IN, D_OUT, TASKS = 12, 9, ["a", "b", "c"]


def layer(dtype=torch.float64, seed=0, perturbed=True, d_in=D_IN, d_out=D_OUT, **overrides) -> MoORELayer:
    """A bare MoORE layer on a random Linear with bias; ``perturbed`` moves every parameter off init."""
    torch.manual_seed(seed)
    config = MoOREConfig(**{"r": 4, "num_experts": 5, "task_dim": 3, "tasks": TASKS, **overrides})
    moore = MoORELayer(nn.Linear(d_in, d_out, dtype=dtype), config, RoutingState(), adapter_dtype=dtype)
    moore.reset_parameters()
    if perturbed:
        with torch.no_grad():
            for name, parameter in moore.named_parameters():
                if name.startswith("moore_"):
                    parameter.add_(0.5 * torch.randn_like(parameter))
    return moore


def golden(moore: MoORELayer, x: torch.Tensor, task_ids: list[int]) -> torch.Tensor:
    """y = U diag(relu(s + P_up G x + P_task e_t)) V^T H x + b, per token in float64 numpy."""
    weight = moore.base_layer.weight.detach().numpy()
    bias = moore.base_layer.bias.detach().numpy()
    u, s, vt = np.linalg.svd(weight, full_matrices=False)
    rotation = np.eye(weight.shape[1])
    for v in moore.moore_householder.detach().numpy():
        v = v / np.linalg.norm(v)
        rotation = rotation @ (np.eye(len(v)) - 2 * np.outer(v, v))  # rows: x H_1 H_2 ... H_r
    g, p_up = moore.moore_router.detach().numpy(), moore.moore_router_up.detach().numpy()
    table, p_task = moore.moore_task_embedding.detach().numpy(), moore.moore_task_proj.detach().numpy()
    out = np.zeros((*x.shape[:-1], weight.shape[0]))
    for i, task in enumerate(task_ids):
        embedding = table.mean(0) if task < 0 else table[task]
        for t in range(x.shape[1]):
            token = x[i, t].numpy()
            w = np.maximum(s + p_up @ (g @ token) + p_task @ embedding, 0)
            out[i, t] = u @ (w * (vt @ (token @ rotation))) + bias
    return torch.tensor(out)


def test_golden_against_float64_per_token_equation():
    moore = layer()
    x = torch.randn(3, 4, D_IN, dtype=torch.float64)
    moore.state.task_ids = torch.tensor([0, 2, -1])
    assert torch.allclose(moore(x), golden(moore, x, [0, 2, -1]), atol=1e-10, rtol=0)


@pytest.mark.parametrize("shape", [(12, 9), (9, 12)])
def test_fast_path_matches_direct_reference(shape):
    moore = layer(dtype=torch.float32, seed=2, d_in=shape[0], d_out=shape[1])
    x = torch.randn(3, 5, shape[0])
    task_ids = torch.tensor([1, -1, 0])
    moore.state.task_ids = task_ids
    assert torch.allclose(moore(x), moore.output_reference(x, task_ids), atol=1e-5, rtol=1e-5)


def test_fast_path_never_builds_per_direction_outputs():
    """The m rank-one experts' outputs (seq, m, d_out) exist only on the reference path."""
    moore = layer(dtype=torch.float32, d_in=6, d_out=40)  # m = 6 directions
    x, task_ids = torch.randn(2, 3, 6), torch.tensor([0, 1])
    moore.state.task_ids = task_ids
    with torch.no_grad():
        with LargestTensor() as fast:
            moore(x)
        with LargestTensor() as reference:
            moore.output_reference(x, task_ids)
    one_example_per_direction = 3 * 6 * 40
    assert reference.largest >= one_example_per_direction > fast.largest


def test_compact_wy_form_equals_the_product_of_reflections():
    vectors = torch.randn(6, 10, dtype=torch.float64)
    unit, t = householder_product(vectors)
    product = torch.eye(10, dtype=torch.float64)
    for v in vectors / vectors.norm(dim=-1, keepdim=True):
        product = product @ (torch.eye(10, dtype=torch.float64) - 2 * torch.outer(v, v))
    assert torch.allclose(torch.eye(10, dtype=torch.float64) - unit.T @ t @ unit, product, atol=1e-12)
    assert torch.allclose(product @ product.T, torch.eye(10, dtype=torch.float64), atol=1e-12)


def test_rotation_is_orthogonal_after_training_moves_it():
    moore = layer(dtype=torch.float32)
    x = torch.randn(20, D_IN)
    assert torch.allclose(moore.rotate(x).norm(dim=-1), x.norm(dim=-1), rtol=1e-5)
    assert not torch.allclose(moore.rotate(x), x, atol=1e-3)


def test_init_reproduces_the_frozen_layer():
    """Paired reflections give H = I and zero P's give w = s: W x + b up to SVD round-off.

    On this 256 -> 512 float32 layer the error measured 1.5e-6 of the output's size.
    """
    moore = layer(dtype=torch.float32, perturbed=False, d_in=256, d_out=512)
    pairs = moore.moore_householder.detach()
    assert torch.equal(pairs[0::2], pairs[1::2]) and pairs.abs().sum() > 0
    assert torch.count_nonzero(moore.moore_router_up) == 0 and torch.count_nonzero(moore.moore_task_proj) == 0
    x = torch.randn(4, 8, 256)
    moore.state.task_ids = torch.tensor([0, 1, 2, -1])
    base = moore.base_layer(x)
    assert (moore(x) - base).abs().max() <= 1e-5 * base.abs().max()


def test_bf16_base_at_init_stays_within_bf16_rounding(input_ids):
    """The float32 SVD path differs from the bf16 matmul by bf16 rounding only (2^-8 relative)."""
    base = tiny_model().to(torch.bfloat16)
    expected = base(input_ids).logits.float()
    model = samora.get_model(base, MoOREConfig(r=4, num_experts=8, task_dim=4, tasks=TASKS))
    logits = model(input_ids, task_ids=[0, 1, 2]).logits
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - expected).abs().max() <= 2**-7 * expected.abs().max()


def test_shapes_and_parameter_count():
    config = MoOREConfig(r=4, num_experts=8, task_dim=4, tasks=TASKS, target_modules=["q_proj", "v_proj"])
    model = samora.get_model(tiny_model(), config)
    v_proj = model.samora_adapter.layers["model.layers.0.self_attn.v_proj"]  # 32 -> 16, m = 16
    assert v_proj.moore_U.shape == (16, 16) and v_proj.moore_V.shape == (32, 16) and v_proj.moore_S.shape == (16,)
    assert v_proj.moore_router_up.shape == (16, 8) and v_proj.moore_task_proj.shape == (16, 4)

    def per_module(d_in, m, e=8, t=3, d_te=4, r=4):  # d_in E + E m + T d_te + d_te m + r d_in
        return d_in * e + e * m + t * d_te + d_te * m + r * d_in

    assert samora.trainable_parameters(model).trainable == 2 * (per_module(32, 32) + per_module(32, 16))


def test_singular_factors_are_rebuilt_not_saved(tmp_path, input_ids):
    model = samora.get_model(tiny_model(), MoOREConfig(r=4, num_experts=8, task_dim=4, tasks=TASKS))
    names = {key.rsplit(".", 1)[-1] for key in adapter_state_dict(model)}
    assert names == {"moore_householder", "moore_router", "moore_router_up", "moore_task_embedding", "moore_task_proj"}
    first = next(iter(adapter_of(model).layers.values()))
    weight = first.base_weight()
    assert torch.allclose(first.moore_U * first.moore_S @ first.moore_V.T, weight, atol=1e-5)


def test_unseen_task_and_missing_ids_use_the_mean_embedding():
    moore = layer(dtype=torch.float64)
    x = torch.randn(2, 3, D_IN, dtype=torch.float64)
    moore.state.task_ids = torch.tensor([-1, -1])
    unseen = moore(x)
    moore.state.task_ids = None
    assert torch.allclose(moore(x), unseen, atol=1e-12)
    with torch.no_grad():
        moore.moore_task_embedding.copy_(moore.moore_task_embedding.mean(0, keepdim=True).expand(3, -1))
    moore.state.task_ids = torch.tensor([1, 1])
    assert torch.allclose(moore(x), unseen, atol=1e-12)


def test_task_ids_route_each_example(input_ids):
    model = samora.get_model(tiny_model(), MoOREConfig(r=4, num_experts=8, task_dim=4, tasks=TASKS))
    with torch.no_grad():
        for moore in adapter_of(model).layers.values():
            nn.init.normal_(moore.moore_task_proj)
    a = model(input_ids, task_ids=[0, 0, 0]).logits
    b = model(input_ids, task_ids=[1, 1, 1]).logits
    assert not torch.allclose(a, b)


def test_records_routing_over_all_singular_directions():
    moore = layer(dtype=torch.float32)
    moore.state.record_routing = True
    moore.state.task_ids = torch.tensor([0, 1])
    moore(torch.randn(2, 3, D_IN))
    weights = moore.state.routing[moore.name]
    assert weights.shape == (2, 3, min(D_IN, D_OUT)) and (weights >= 0).all()


def test_not_mergeable_and_clear_config_errors():
    with pytest.raises(samora.NotMergeableError):
        layer().delta_weight()
    with pytest.raises(ValueError, match="even"):
        MoOREConfig(r=3, tasks=TASKS)
    with pytest.raises(ValueError, match="tasks"):
        MoOREConfig()
    with pytest.raises(ValueError, match="task_dim"):
        MoOREConfig(task_dim=0, tasks=TASKS)


def test_cost_follows_the_batch_tasks_not_the_configured_ones():
    from torch.utils.flop_counter import FlopCounterMode

    x, task_ids = torch.randn(3, 2, D_IN), torch.tensor([0, -1, 2])
    flops = []
    for num_tasks in (3, 300, 10_000):
        moore = layer(dtype=torch.float32, tasks=[f"t{i}" for i in range(num_tasks)])
        moore.state.task_ids = task_ids
        with FlopCounterMode(display=False) as counter:
            moore(x).square().sum().backward()
        flops.append(counter.get_total_flops())
    assert flops[0] > 0 and flops == [flops[0]] * 3


def test_task_shifts_of_the_distinct_tasks_equal_the_all_tasks_table():
    moore = layer(tasks=[f"t{i}" for i in range(40)])
    task_ids = torch.tensor([39, -1, 5, 39, -1])
    embeddings = moore.moore_task_embedding
    table = torch.cat([embeddings, embeddings.mean(0, keepdim=True)]) @ moore.moore_task_proj.T  # row -1: the mean
    assert torch.allclose(moore.task_shift(task_ids), table[task_ids], atol=1e-12, rtol=0)
    assert torch.allclose(moore.task_shift(torch.tensor([3, 4])), table[[3, 4]], atol=1e-12, rtol=0)
    assert torch.allclose(moore.task_shift(None), table[-1:], atol=1e-12, rtol=0)


@pytest.mark.parametrize("task_ids", [torch.tensor([1, -1, 0]), None])
def test_generate_path_with_folded_rotation_matches_the_reference(task_ids):
    """Inside generate the layer folds H into V and stacks G^T; same values as the plain path."""
    moore = layer(dtype=torch.float64, seed=5).eval()
    x = torch.randn(3, 2, D_IN, dtype=torch.float64)
    moore.state.task_ids = task_ids
    moore.state.constants = {}
    with torch.no_grad():
        folded = moore(x)
        assert ("", "rotated_V_and_router") in moore.state.constants  # the folded path ran
        assert torch.allclose(folded, moore.output_reference(x, task_ids), atol=1e-12, rtol=0)
        assert torch.allclose(moore(x), folded, atol=0, rtol=0)  # second token: kept values


def test_training_path_gradients_match_the_reference():
    x = torch.randn(2, 3, D_IN, dtype=torch.float64)
    task_ids = torch.tensor([2, -1])
    grads = []
    for path in ("fast", "reference"):
        moore = layer(seed=6)
        moore.state.task_ids = task_ids
        out = moore(x) if path == "fast" else moore.output_reference(x, task_ids)
        out.square().sum().backward()
        grads.append({n: p.grad for n, p in moore.named_parameters() if n.startswith("moore_")})
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-10, rtol=1e-10), name
