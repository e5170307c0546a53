"""SAMoRA's ``variant="released"`` against the released code's formulas, written out in float64.

The reference below follows the authors' released model file (as docs/methods.md summarises it),
in that code's layout (W_gate as a (d_g, 1) matrix, no b_gate), token by token and expert by expert:
forward y = W x + b + sigmoid(e_t . W_gate) sum_i g_i B_i (S (A x)), g = softmax(cos(A x, k_i) / tau);
L_orth = mse(A A^T, I) + mean_i mse(B_i^T B_i, I); L_match = mean_i KL(softmax(b_i/|b_i|) ||
softmax(k_i/|k_i|)); the model's regulariser = sum over modules of lambda times each term.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import samora
from samora.methods.samora import PAPER, RELEASED, SAMoRALayer
from samora.routing import RoutingState
from tests.helpers import tiny_model

D_IN, D_OUT, R, N, TASKS = 12, 10, 4, 3, ["a", "b", "c"]


def released_layer(seed=0, dtype=torch.float64, **overrides) -> SAMoRALayer:
    """A released-variant layer in float64, moved off its init so that every term is non-trivial."""
    torch.manual_seed(seed)
    config = samora.SAMoRAConfig(r=R, num_experts=N, tasks=TASKS, dropout=0.0, variant="released", **overrides)
    layer = SAMoRALayer(nn.Linear(D_IN, D_OUT).to(dtype), config, RoutingState(), adapter_dtype=dtype)
    layer.reset_parameters()
    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            if name.startswith("samora_"):
                parameter.add_(0.3 * torch.randn_like(parameter))
    return layer


def copied_weights(layer: SAMoRALayer) -> dict[str, torch.Tensor]:
    """The layer's weights in the released code's layout, as independent float64 copies."""
    p = {k: v.detach().double().clone() for k, v in layer.named_parameters()}
    return {
        "W": p["base_layer.weight"],
        "bias": p.get("base_layer.bias", 0.0),
        "A": p["samora_A"],
        "B": p["samora_B"],
        "keys": p["samora_keys"],
        "S": p["samora_S"],
        "E": p["samora_task_embedding"],
        "W_gate": p["samora_gate_weight"].reshape(-1, 1),
    }


def released_forward(w: dict, x: torch.Tensor, task_ids: list[int], tau: float) -> torch.Tensor:
    out = torch.empty(x.shape[0], x.shape[1], D_OUT, dtype=torch.float64)
    logits = [float(w["E"][t] @ w["W_gate"][:, 0]) for t in range(len(TASKS))]
    for b, task in enumerate(task_ids):
        logit = sum(logits) / len(logits) if task < 0 else logits[task]
        g_task = 1 / (1 + math.exp(-logit))
        for s in range(x.shape[1]):
            xv = x[b, s].double()
            h = w["A"] @ xv
            cos = torch.stack([h @ k / (h.norm() * k.norm()) for k in w["keys"]])
            g = torch.exp(cos / tau) / torch.exp(cos / tau).sum()
            z = w["S"] * h
            out[b, s] = w["W"] @ xv + w["bias"] + g_task * sum(g[i] * (w["B"][i] @ z) for i in range(N))
    return out


def released_losses(w: dict) -> tuple[float, float]:
    eye = torch.eye(R, dtype=torch.float64)

    def mse(m):
        return float(((m - eye) ** 2).sum()) / R**2

    orth = mse(w["A"] @ w["A"].T) + sum(mse(w["B"][i].T @ w["B"][i]) for i in range(N)) / N
    match = 0.0
    for i in range(N):
        b_i = w["B"][i].mean(0)
        p = torch.softmax(b_i / b_i.norm(), 0)
        q = torch.softmax(w["keys"][i] / w["keys"][i].norm(), 0)
        match += float((p * (p.log() - q.log())).sum()) / N
    return orth, match


def test_variant_sets_every_switch_and_explicit_switches_win():
    released = samora.SAMoRAConfig(variant="released")
    assert {k: getattr(released, k) for k in RELEASED} == RELEASED
    assert {k: getattr(samora.SAMoRAConfig(), k) for k in PAPER} == PAPER  # the paper is the default
    mixed = samora.SAMoRAConfig(variant="released", scale_init="svd")
    assert mixed.scale_init == "svd" and mixed.gate_bias is False
    again = samora.SAMoRAConfig.from_dict(mixed.to_dict())
    assert again == mixed


def test_released_forward_equals_released_formulas_to_1e6():
    layer = released_layer()
    x = torch.randn(3, 5, D_IN, dtype=torch.float64)
    task_ids = [2, -1, 0]
    layer.state.task_ids = torch.tensor(task_ids)
    expected = released_forward(copied_weights(layer), x, task_ids, layer.config.temperature)
    assert (layer(x) - expected).abs().max() < 1e-6
    assert torch.allclose(layer.delta(x, torch.tensor(task_ids)), layer.delta_reference(x, torch.tensor(task_ids)))


def test_released_losses_equal_released_formulas_to_1e6():
    layer = released_layer(seed=1)
    orth, match = released_losses(copied_weights(layer))
    losses = layer.aux_losses()
    assert abs(losses["orth"].item() - orth) < 1e-6 and abs(losses["match"].item() - match) < 1e-6
    paper = SAMoRALayer(
        layer.base_layer,
        samora.SAMoRAConfig(r=R, num_experts=N, tasks=TASKS),
        RoutingState(),
        adapter_dtype=torch.float64,
    )
    paper.load_state_dict(layer.state_dict(), strict=False)
    assert paper.aux_losses()["orth"].item() > 2 * orth  # the switch really changes the term


def test_released_model_loss_sums_the_modules_terms(input_ids):
    config = samora.SAMoRAConfig(r=R, tasks=TASKS, variant="released", lambda_orth=0.1, lambda_match=0.5)
    model = samora.get_model(tiny_model().double(), config, adapter_dtype=torch.float64)
    with torch.no_grad():
        for layer in model.samora_adapter.layers.values():
            layer.samora_B.normal_()
    out = model(input_ids, labels=input_ids, task_ids="b")
    terms = [released_losses(copied_weights(layer)) for layer in model.samora_adapter.layers.values()]
    expected = 0.1 * sum(t[0] for t in terms) + 0.5 * sum(t[1] for t in terms)
    task_loss = model.samora_adapter.last_losses["task"].item()
    assert abs(out.loss.item() - task_loss - expected) < 1e-6


def test_released_init_has_no_gate_bias_unit_gate_weight_and_ones_scale():
    config = samora.SAMoRAConfig(r=R, tasks=TASKS, variant="released")
    model = samora.get_model(tiny_model(), config)
    layers = list(model.samora_adapter.layers.values())
    assert not any(hasattr(layer, "samora_gate_bias") for layer in layers)
    assert all(torch.equal(layer.samora_S.detach(), torch.ones(R)) for layer in layers)
    weights = torch.cat([layer.samora_gate_weight.detach() for layer in layers])  # 8 layers x d_g = 8
    assert weights.abs().max() <= 1.0 and weights.abs().max() > 1 / math.sqrt(config.task_dim)
    count = sum(p.numel() for n, p in layers[0].named_parameters() if n.startswith("samora_"))
    d_in, d_out = layers[0].in_features, layers[0].out_features
    assert count == R * d_in + 3 * R * d_out + 3 * R + R + len(TASKS) * 8 + 8  # no b_gate


@pytest.mark.parametrize(
    "field,value",
    [("variant", "authors"), ("orth_form", "l1"), ("gate_init", "zero"), ("gate_bias", "no"), ("match_normalize", 1)],
)
def test_invalid_switch_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        samora.SAMoRAConfig(**{field: value})
