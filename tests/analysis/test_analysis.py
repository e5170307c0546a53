"""samora.analysis on tiny models: the numbers are right and the files are written."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import samora
from samora.analysis import (
    RouterCollapseWarning,
    RouterUsage,
    analyze,
    expert_outputs,
    load_entropy,
    separation,
    task_gate_values,
)
from tests.helpers import VOCAB, tiny_model

TASKS = ["alpha", "beta", "gamma"]
PNG = b"\x89PNG\r\n\x1a\n"


def samora_model(perturb: float = 0.3, **config):
    torch.manual_seed(0)
    model = samora.get_model(tiny_model(), samora.SAMoRAConfig(r=4, num_experts=3, tasks=TASKS, **config))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(perturb * torch.randn(parameter.shape, generator=generator))
    return model


def batches(count: int = 3, seed: int = 0):
    """Batches of 4 with right padding in two rows and task ids 0, 1, 2 and -1 (unseen)."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        mask = torch.ones(4, 10, dtype=torch.long)
        mask[0, 6:] = 0
        mask[2, 8:] = 0
        ids = torch.randint(3, VOCAB, (4, 10), generator=generator) * mask
        out.append(
            {"input_ids": ids, "attention_mask": mask, "task_ids": torch.tensor([0, 1, 2, -1]), "labels": ids.clone()}
        )
    return out


def test_router_usage_matches_a_direct_computation():
    generator = torch.Generator().manual_seed(0)
    usage = RouterUsage(TASKS)
    records = []
    for _ in range(3):
        weights = torch.rand(4, 5, 3, generator=generator) * 2  # unnormalised, e.g. top-k gates
        mask = (torch.rand(4, 5, generator=generator) > 0.3).long()
        task_ids = torch.tensor([0, 2, -1, 0])
        per_example = torch.rand(4, 3, generator=generator)  # a router that picks per example
        usage.add({"tokens": weights, "examples": per_example}, task_ids, mask)
        records.append((weights, mask, task_ids, per_example))
    table = usage.usage()
    for group, task in [(0, 0), (2, 2), (3, -1)]:
        tokens = torch.cat(
            [(w / w.sum(-1, keepdim=True))[ids == task][m[ids == task].bool()] for w, m, ids, _ in records]
        )
        assert torch.allclose(table["tokens"][group].float(), tokens.mean(0), atol=1e-6)
        examples = torch.cat([(p / p.sum(-1, keepdim=True))[ids == task] for _, _, ids, p in records])
        assert torch.allclose(table["examples"][group].float(), examples.mean(0), atol=1e-6)
    assert torch.isnan(table["tokens"][1]).all()  # no "beta" example: no numbers, not zeros
    for name in table:
        assert torch.allclose(usage.load()[name].sum(), torch.tensor(1.0, dtype=torch.float64))
    assert load_entropy(torch.tensor([1 / 3] * 3)) == pytest.approx(1.0)
    assert load_entropy(torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(0.0, abs=1e-9)


def test_analyze_writes_figures_and_correct_numbers(tmp_path):
    model = samora_model()
    data = batches()
    results = analyze(model, data, tmp_path, heatmap_layers=3)
    for key in ("json", "expert_usage", "expert_pca", "task_gates"):
        path = tmp_path / results["files"][key].rsplit("/", 1)[-1]
        assert path.is_file() and path.stat().st_size > 1000
        if key != "json":
            assert path.read_bytes().startswith(PNG)
    assert json.loads((tmp_path / "analysis.json").read_text()) == results

    routing = results["routing"]
    masks = torch.stack([b["attention_mask"] for b in data])  # (batches, 4, 10)
    assert routing["tokens_per_task"] == {
        "alpha": int(masks[:, 0].sum()),
        "beta": int(masks[:, 1].sum()),
        "gamma": int(masks[:, 2].sum()),
        "<no task>": int(masks[:, 3].sum()),
    }
    layer = "model.layers.1.self_attn.v_proj"
    handle = model.samora_adapter
    handle.state.record_routing = True
    with torch.no_grad():
        recorded = []
        for batch in data:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], task_ids=batch["task_ids"])
            recorded.append(handle.state.routing[layer])
    handle.state.record_routing = False
    for row, group in enumerate(["alpha", "beta", "gamma", "<no task>"]):
        tokens = torch.cat([g[row][b["attention_mask"][row].bool()] for g, b in zip(recorded, data, strict=True)])
        assert routing["usage"][layer][group] == pytest.approx(tokens.mean(0).tolist(), abs=1e-6)
    for per_group in routing["usage"].values():
        for shares in per_group.values():
            assert sum(shares) == pytest.approx(1.0, abs=1e-9)
    assert results["collapse"]["layers"] == [] and results["collapse"]["warning"] is None
    assert set(results["expert_pca"]) == {f"model.layers.1.self_attn.{p}_proj" for p in "qkvo"}
    assert all(entry["tokens"] > 0 and entry["separation"] > 0 for entry in results["expert_pca"].values())


def test_task_gates_are_the_sigmoid_of_the_learned_logits():
    model = samora_model()
    gates = task_gate_values(model)
    assert set(gates) == set(model.samora_adapter.layers)
    for name, layer in model.samora_adapter.layers.items():
        logits = layer.samora_task_embedding @ layer.samora_gate_weight + layer.samora_gate_bias
        expected = torch.sigmoid(logits).tolist()
        assert [gates[name][t] for t in TASKS] == pytest.approx(expected, abs=1e-6)
        assert gates[name]["<unseen>"] == pytest.approx(torch.sigmoid(logits.mean()).item(), abs=1e-6)
    assert task_gate_values(samora_model(scaling=False)) == {}  # g_task is fixed to 1 without scaling


def test_keys_that_favour_one_expert_raise_the_collapse_warning(tmp_path):
    """Every token's latent h shares one direction d; expert 0's key is d, the others -d, tau 0.4."""
    model = samora_model(temperature=0.4)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] += 10.0  # a common component in every hidden state
    data = batches(2)
    inputs = {}
    hooks = [
        layer.register_forward_pre_hook(lambda _m, args, n=name: inputs.setdefault(n, args[0].detach()))
        for name, layer in model.samora_adapter.layers.items()
    ]
    with torch.no_grad():
        model(input_ids=data[0]["input_ids"], task_ids=data[0]["task_ids"])
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        for name, layer in model.samora_adapter.layers.items():
            direction = F.normalize(F.normalize(inputs[name] @ layer.samora_A.T, dim=-1).mean((0, 1)), dim=0)
            layer.samora_keys.copy_(torch.stack([direction, -direction, -direction]))
    with pytest.warns(RouterCollapseWarning, match="router collapse"):
        results = analyze(model, data, tmp_path, heatmap_layers=1, collapse_threshold=0.9)
    collapsed = results["collapse"]["layers"]
    assert {c["layer"] for c in collapsed} == set(model.samora_adapter.layers)
    assert all(c["expert"] == 0 and c["share"] > 0.9 for c in collapsed)
    assert all(c["share"] == pytest.approx(results["routing"]["load"][c["layer"]][0]) for c in collapsed)


def test_expert_outputs_recompose_the_layer_update():
    model = samora_model()
    layer = model.samora_adapter.layers["model.layers.0.self_attn.q_proj"]
    x = torch.randn(2, 5, layer.in_features, generator=torch.Generator().manual_seed(3))
    task_ids = torch.tensor([0, 2])
    outputs = expert_outputs(layer, x)  # (2, 5, N, d_out)
    h = x @ layer.samora_A.T
    gates = layer.router_weights(x, h)
    mixed = (gates.unsqueeze(-1) * outputs).sum(-2) * layer.task_gate(task_ids).reshape(2, 1, 1)
    assert torch.allclose(mixed, layer.delta(x, task_ids), atol=1e-5)


def test_the_analysis_reads_the_layer_hooks_not_the_method_class():
    """Expert outputs and task gates come from AdapterLayer.expert_outputs / task_gate: None by
    default (HydraLoRA has no task gate and no expert outputs here), a method's own where it gives them."""
    torch.manual_seed(0)
    hydra = samora.get_model(tiny_model(), samora.HydraLoRAConfig(r=4, num_experts=3, tasks=TASKS))
    layer = next(iter(hydra.samora_adapter.layers.values()))
    assert expert_outputs(layer, torch.randn(2, layer.in_features)) is None and task_gate_values(hydra) == {}
    gated = samora_model()
    names = set(gated.samora_adapter.layers)
    assert set(task_gate_values(gated)) == names
    assert set(task_gate_values(samora_model(scaling=False))) == set()  # g_task = 1: no gate to show


def test_separation_score():
    generator = torch.Generator().manual_seed(0)
    noise = 0.01 * torch.randn(50, 3, 8, generator=generator)
    centres = 5 * torch.eye(3, 8)
    assert separation(centres + noise) > 100
    assert separation(noise.mean(1, keepdim=True).expand(50, 3, 8).clone()) == pytest.approx(0.0, abs=1e-9)
    assert separation(torch.zeros(10, 3, 8)) is None


def test_analysis_at_initialisation_and_without_routing(tmp_path):
    at_init = samora_model(perturb=0.0)  # B = 0: every expert output is zero
    results = analyze(at_init, batches(1), tmp_path / "init", heatmap_layers=1)
    assert all(entry["separation"] is None for entry in results["expert_pca"].values())
    torch.manual_seed(0)
    lora = samora.get_model(tiny_model(), samora.LoRAConfig(r=4, tasks=TASKS))
    with pytest.raises(ValueError, match="nothing to analyze"):
        analyze(lora, batches(1), tmp_path / "lora")


def test_bad_input_is_a_clear_error(tmp_path):
    model = samora_model()
    with pytest.raises(ValueError, match="no batches"):
        analyze(model, [], tmp_path)
    with pytest.raises(ValueError, match="input_ids"):
        analyze(model, [{"attention_mask": torch.ones(2, 3)}], tmp_path)
    with pytest.raises(ValueError, match="pca_layers"):
        analyze(model, batches(1), tmp_path, pca_layers=["model.layers.9.nope"])
    with pytest.raises(ValueError, match="threshold"):
        analyze(model, batches(1), tmp_path, collapse_threshold=1.5)
