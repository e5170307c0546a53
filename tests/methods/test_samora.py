"""SAMoRA against an independent float64 re-computation of eqs. (4)-(11), and its switches."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import samora
from samora.methods.samora import SAMoRALayer, top_singular_values
from samora.routing import RoutingState
from tests.helpers import enable_checkpointing, tiny_model

D_IN, D_OUT, R, N, T = 12, 10, 4, 3, 3


def make_layer(seed=0, **overrides) -> SAMoRALayer:
    torch.manual_seed(seed)
    config = samora.SAMoRAConfig(r=R, num_experts=N, tasks=["a", "b", "c"], dropout=0.0, **overrides)
    layer = SAMoRALayer(nn.Linear(D_IN, D_OUT), config, RoutingState())
    layer.reset_parameters()
    with torch.no_grad():  # leave the init so every term is non-trivial
        for name, parameter in layer.named_parameters():
            if name.startswith("samora_"):
                parameter.add_(0.3 * torch.randn_like(parameter))
    return layer


def reference_output(layer: SAMoRALayer, x: torch.Tensor, task_ids) -> torch.Tensor:
    """Eq. (7) written out token by token in float64: y = W x + b + g_task sum_i g_i B_i S A x."""
    p = {k: v.detach().double() for k, v in layer.named_parameters()}
    c = layer.config
    out = torch.empty(x.shape[0], x.shape[1], D_OUT, dtype=torch.float64)
    gate_logits = (
        [float(p["samora_task_embedding"][t] @ p["samora_gate_weight"] + p["samora_gate_bias"][0]) for t in range(T)]
        if c.scaling
        else []
    )
    for b in range(x.shape[0]):
        g_task = 1.0
        if c.scaling:
            logit = sum(gate_logits) / T if task_ids[b] < 0 else gate_logits[task_ids[b]]
            g_task = 1 / (1 + math.exp(-logit))
        for s in range(x.shape[1]):
            xv = x[b, s].double()
            h = p["samora_A"] @ xv
            if c.router == "semantic":
                sims = torch.stack([h @ k / (h.norm() * k.norm()) for k in p["samora_keys"]])
                g = torch.softmax(sims / c.temperature, 0)
            elif c.router == "mlp":  # softmax(R_2 relu(R_1 x))
                g = torch.softmax(p["samora_router"] @ torch.relu(p["samora_router_hidden"] @ xv), 0)
            else:
                g = torch.softmax(p["samora_router"] @ xv, 0)
            z = h * p["samora_S"] if c.scaling else h
            mix = sum(g[i] * (p["samora_B"][i] @ z) for i in range(N))
            out[b, s] = p["base_layer.weight"] @ xv + p["base_layer.bias"] + g_task * mix
    return out


@pytest.mark.parametrize(
    "overrides", [{}, {"router": "linear"}, {"router": "mlp", "router_hidden": 5}, {"scaling": False}]
)
def test_forward_matches_float64_equation_7(overrides):
    layer = make_layer(**overrides)
    x = torch.randn(3, 5, D_IN)
    task_ids = [2, -1, 0]
    layer.state.task_ids = torch.tensor(task_ids)
    expected = reference_output(layer, x, task_ids)
    assert torch.allclose(layer(x).double(), expected, atol=1e-5, rtol=1e-5)


def test_fast_mixture_equals_per_expert_reference():
    layer = make_layer(seed=3)
    x, ids = torch.randn(4, 7, D_IN), torch.tensor([0, 1, 2, -1])
    assert torch.allclose(layer.delta(x, ids), layer.delta_reference(x, ids), atol=1e-6, rtol=1e-5)
    assert torch.allclose(layer.delta(x, None), layer.delta_reference(x, None), atol=1e-6, rtol=1e-5)


def test_regularisers_match_float64_equations_9_to_11():
    layer = make_layer(seed=1)
    A, B, keys = (layer.get_parameter(n).detach().double() for n in ("samora_A", "samora_B", "samora_keys"))
    eye = torch.eye(R, dtype=torch.float64)
    orth = ((A @ A.T - eye) ** 2).sum() + sum(((B[i].T @ B[i] - eye) ** 2).sum() for i in range(N))
    match = 0.0
    for i in range(N):
        p, q = torch.softmax(B[i].mean(0), 0), torch.softmax(keys[i], 0)
        match += float((p * (p / q).log()).sum()) / N
    losses = layer.aux_losses()
    assert losses["orth"].item() == pytest.approx(orth.item(), rel=1e-5)
    assert losses["match"].item() == pytest.approx(match, rel=1e-4, abs=1e-7)


def test_model_loss_adds_weighted_regularisers_mean_or_sum_over_modules(input_ids):
    for reduction in ("mean", "sum"):
        config = samora.SAMoRAConfig(r=4, tasks=["a"], lambda_orth=0.1, lambda_match=0.5, aux_reduction=reduction)
        model = samora.get_model(tiny_model(), config)
        layers = list(model.samora_adapter.layers.values())
        with torch.no_grad():
            for layer in layers:
                layer.samora_B.normal_()
        out = model(input_ids, labels=input_ids, task_ids="a")
        orth = torch.stack([layer.aux_losses()["orth"] for layer in layers])
        match = torch.stack([layer.aux_losses()["match"] for layer in layers])
        combine = torch.mean if reduction == "mean" else torch.sum
        terms = model.samora_adapter.last_losses
        assert terms["orth"].item() == pytest.approx(0.1 * combine(orth).item(), rel=1e-5)
        assert terms["match"].item() == pytest.approx(0.5 * combine(match).item(), rel=1e-5)
        assert out.loss.item() == pytest.approx((terms["task"] + terms["orth"] + terms["match"]).item(), rel=1e-6)


@pytest.mark.parametrize("reentrant", [True, False])
def test_regularisers_receive_gradient_under_checkpointing(reentrant, input_ids):
    """The regulariser gradient with checkpointing on equals d(lambda L_aux)/dtheta computed alone."""

    def grads(lambda_orth, checkpointing):
        config = samora.SAMoRAConfig(r=4, tasks=["a"], dropout=0.0, lambda_orth=lambda_orth, lambda_match=0.0)
        model = samora.get_model(tiny_model(), config)
        torch.manual_seed(5)
        with torch.no_grad():
            for layer in model.samora_adapter.layers.values():
                layer.samora_B.normal_()
        if checkpointing:
            enable_checkpointing(model, reentrant)
        model.train()
        model(input_ids, labels=input_ids, task_ids="a").loss.backward()
        return model, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    _, without = grads(0.0, True)
    model, with_reg = grads(1.0, True)
    model.zero_grad()
    sum(model.samora_adapter.aux_losses().values()).backward()
    for name, parameter in model.named_parameters():
        if name.endswith("samora_A"):
            aux_grad = parameter.grad
            assert aux_grad.abs().sum() > 0
            assert torch.allclose(with_reg[name] - without[name], aux_grad, atol=1e-5, rtol=1e-4), name


def test_scale_starts_at_top_singular_values_and_ones_switch():
    layer = make_layer()
    layer.reset_parameters()
    exact = torch.linalg.svdvals(layer.base_weight().detach())[:R]
    assert torch.allclose(layer.samora_S, exact, rtol=1e-4)
    ones = SAMoRALayer(
        nn.Linear(D_IN, D_OUT), samora.SAMoRAConfig(r=R, tasks=["a"], scale_init="ones"), RoutingState()
    )
    ones.reset_parameters()
    assert torch.equal(ones.samora_S.detach(), torch.ones(R))


def test_randomized_svd_on_a_large_decaying_spectrum():
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(512, 512))
    v, _ = torch.linalg.qr(torch.randn(384, 384))
    spectrum = 10.0 * torch.exp(-torch.arange(384.0) / 40)
    weight = (u[:, :384] * spectrum) @ v.T
    for k in (8, 16):
        assert torch.allclose(top_singular_values(weight, k), spectrum[:k], rtol=1e-4)


def test_unseen_task_gate_is_sigmoid_of_mean_logit_and_no_ids_use_it():
    layer = make_layer()
    logits = layer.samora_task_embedding @ layer.samora_gate_weight + layer.samora_gate_bias
    gate = layer.task_gate(torch.tensor([1, -1]))
    assert torch.allclose(gate, torch.sigmoid(torch.stack([logits[1], logits.mean()])))
    assert torch.allclose(layer.task_gate(None), torch.sigmoid(logits.mean()))
    x = torch.randn(2, 3, D_IN)
    assert torch.allclose(layer.delta(x, None), layer.delta(x, torch.tensor([-1, -1])))


def test_ablation_switches_change_the_parameter_set():
    def names(**kw):
        return {n for n, _ in make_layer(**kw).named_parameters() if n.startswith("samora_")}

    assert names() == {
        "samora_A",
        "samora_B",
        "samora_keys",
        "samora_S",
        "samora_task_embedding",
        "samora_gate_weight",
        "samora_gate_bias",
    }
    assert names(router="linear") == names() - {"samora_keys"} | {"samora_router"}
    assert names(router="mlp") == names() - {"samora_keys"} | {"samora_router", "samora_router_hidden"}
    assert names(scaling=False) == {"samora_A", "samora_B", "samora_keys"}
    assert "match" not in make_layer(router="linear").aux_losses()
    assert "match" not in make_layer(router="mlp").aux_losses()


def test_parameter_count_matches_closed_form():
    """r d_in + N r d_out + N r (keys) + r (S) + T d_g + d_g + 1 per module (paper form, with b_gate)."""
    layer = make_layer()
    count = sum(p.numel() for n, p in layer.named_parameters() if n.startswith("samora_"))
    assert count == R * D_IN + N * R * D_OUT + N * R + R + T * 8 + 8 + 1


def test_mlp_router_parameter_count_replaces_the_keys_with_both_layers():
    """router="mlp": the N r keys give way to R_1 (h, d_in) and R_2 (N, h): h (d_in + N) more."""
    layer = make_layer(router="mlp", router_hidden=7)
    count = sum(p.numel() for n, p in layer.named_parameters() if n.startswith("samora_"))
    assert count == R * D_IN + N * R * D_OUT + 7 * (D_IN + N) + R + T * 8 + 8 + 1
    assert samora.module_parameter_count(layer.config, D_IN, D_OUT) == count  # the budget matcher counts it


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("temperature", 0.0, "temperature"),
        ("router", "attention", "router"),
        ("router_hidden", 0, "router_hidden"),
        ("aux_reduction", "max", "aux_reduction"),
        ("scale_init", "svd2", "scale_init"),
        ("num_experts", 0, "num_experts"),
        ("r", 0, "r must"),
    ],
)
def test_invalid_config_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        samora.SAMoRAConfig(**{field: value})
