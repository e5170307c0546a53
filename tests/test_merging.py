"""Merging: folded models reproduce the adapted ones; what cannot be folded says why."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import samora
from samora.methods.base import linear_shape
from tests.helpers import TARGETS, tiny_model
from tests.method_cases import CASES

TASKS = ["alpha", "beta", "gamma"]
# Logits of the tiny fp32 models are O(1); folding changes only the order of the float32 additions.
ATOL = 1e-5


def adapted(case: str, arch: str, seed: int = 0, dtype=torch.float32):
    """A tiny model with the case's adapter moved off its init (deterministic for a given seed)."""
    config = dataclasses.replace(CASES[case](list(TASKS)), target_modules=TARGETS[arch])
    model = samora.get_model(tiny_model(arch).to(dtype), config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def assert_plain(model, arch: str) -> None:
    """No adapter, no bound forward, original layer types, all weights frozen again as before."""
    assert not hasattr(model, "samora_adapter") and "forward" not in model.__dict__
    for name in TARGETS[arch]:
        modules = [m for n, m in model.named_modules() if n.endswith("." + name)]
        assert modules and all(linear_shape(m) for m in modules)
        assert all(type(m).__module__.startswith(("torch", "transformers")) for m in modules)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("case", ["lora", "multilora"])
def test_merge_static_method_equals_adapted_model(case, arch, input_ids):
    model = adapted(case, arch)
    expected = model(input_ids).logits
    base = tiny_model(arch)(input_ids).logits
    assert not expected.allclose(base, atol=1e-3)  # the adapter really changes the output
    merged = samora.merge(model)
    assert merged is model
    assert_plain(merged, arch)
    assert merged(input_ids).logits.allclose(expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("case", ["moelora", "mtllora"])
def test_merge_for_task_equals_adapted_model_for_that_task(case, arch, input_ids):
    per_task = []
    for task_id, task in enumerate(TASKS):
        model = adapted(case, arch)
        expected = model(input_ids, task_ids=[task] * len(input_ids)).logits
        merged = samora.merge_for_task(model, task if task_id % 2 else task_id)  # by name or by id
        assert_plain(merged, arch)
        got = merged(input_ids).logits
        assert got.allclose(expected, atol=ATOL, rtol=0), task
        per_task.append(got)
    assert not per_task[0].allclose(per_task[1], atol=1e-3)  # the tasks really differ


def test_merge_for_task_on_a_static_method_is_merge(input_ids):
    expected = adapted("lora", "llama")(input_ids).logits
    merged = samora.merge_for_task(adapted("lora", "llama"), "beta")
    assert merged(input_ids).logits.allclose(expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("case", ["moelora", "mtllora"])
def test_merge_of_a_per_task_method_points_to_merge_for_task(case, input_ids):
    model = adapted(case, "llama")
    before = model(input_ids, task_ids=[0, 1, 2]).logits
    with pytest.raises(samora.NotMergeableError, match=r"merge_for_task\(model, task\)"):
        samora.merge(model)
    assert model(input_ids, task_ids=[0, 1, 2]).logits.equal(before)  # left untouched


@pytest.mark.parametrize("case", ["samora", "samora_linear_router", "hydralora"])
def test_token_routed_methods_are_not_mergeable(case, input_ids):
    model = adapted(case, "llama")
    before = model(input_ids, task_ids=[0, 1, 2]).logits
    with pytest.raises(samora.NotMergeableError, match="routes per token"):
        samora.merge(model)
    with pytest.raises(samora.NotMergeableError, match="routes per token"):
        samora.merge_for_task(model, "alpha")
    assert hasattr(model, "samora_adapter")
    assert model(input_ids, task_ids=[0, 1, 2]).logits.equal(before)


def test_unknown_task_is_a_clear_error(input_ids):
    model = adapted("mtllora", "llama")
    with pytest.raises(ValueError, match="unknown task 'delta'.*alpha"):
        samora.merge_for_task(model, "delta")
    with pytest.raises(ValueError, match="cannot route an unseen task"):
        samora.merge_for_task(model, -1)
    assert hasattr(model, "samora_adapter")


def test_bf16_base_stays_bf16(input_ids):
    model = adapted("moelora", "llama", dtype=torch.bfloat16)
    expected = model(input_ids, task_ids=[1, 1, 1]).logits.float()
    merged = samora.merge_for_task(model, 1)
    assert all(p.dtype == torch.bfloat16 for p in merged.parameters())
    # One bf16 rounding of W + delta_W instead of bf16 rounding of W x and of the update.
    assert merged(input_ids).logits.float().allclose(expected, atol=0.05, rtol=0.02)


def test_disabled_layers_are_not_folded(input_ids):
    model = adapted("lora", "llama")
    first = next(iter(model.samora_adapter.layers.values()))
    first.disabled = True
    expected = model(input_ids).logits
    assert samora.merge(model)(input_ids).logits.allclose(expected, atol=ATOL, rtol=0)


def test_tied_weight_is_refused(input_ids):
    config = samora.LoRAConfig(r=2, target_modules=["lm_head"])
    model = samora.get_model(tiny_model("gpt2"), config)  # GPT-2 ties lm_head to the token embedding
    with pytest.raises(samora.NotMergeableError, match="shared by"):
        samora.merge(model)
    assert hasattr(model, "samora_adapter")


def _float64_lora(adapter_dtype):
    """A float64 tiny Llama with a LoRA (r = 4, alpha = 16) moved off its init, and its (A, B) per module."""
    model = samora.get_model(tiny_model().double(), samora.LoRAConfig(r=4, alpha=16.0), adapter_dtype=adapter_dtype)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model.eval(), {
        name: (layer.lora_A.detach().double().clone(), layer.lora_B.detach().double().clone())
        for name, layer in model.samora_adapter.layers.items()
    }


def test_float64_merge_equals_peft_merge_at_the_same_weights(input_ids):
    peft = pytest.importorskip("peft")
    model, factors = _float64_lora(torch.float64)
    expected = model(input_ids).logits
    merged = dict(samora.merge(model).named_parameters())
    assert (model(input_ids).logits - expected).abs().max() < 1e-12  # float32 rounding would give ~1e-7
    reference = peft.get_peft_model(
        tiny_model().double(),
        peft.LoraConfig(r=4, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
    )
    with torch.no_grad():
        for name, module in reference.base_model.model.named_modules():
            if name in factors:
                module.lora_A["default"].weight.copy_(factors[name][0])
                module.lora_B["default"].weight.copy_(factors[name][1])
    peft_merged = dict(reference.merge_and_unload().named_parameters())
    assert set(merged) == set(peft_merged)
    for name in factors:
        weight = f"{name}.weight"
        assert merged[weight].dtype == torch.float64
        assert (merged[weight] - peft_merged[weight]).abs().max() <= 1e-15, name


def test_float32_adapter_on_a_float64_model_merges_in_float64():
    """A float32 adapter on a float64 model: W + delta_W is added in float64, not rounded through float32."""
    model, factors = _float64_lora(torch.float32)
    base = dict(tiny_model().double().named_parameters())
    merged = dict(samora.merge(model).named_parameters())
    for name, (a, b) in factors.items():
        exact = base[f"{name}.weight"] + (b.float() @ a.float() * 4.0).double()  # the float32 adapter's delta_W
        assert merged[f"{name}.weight"].dtype == torch.float64
        assert (merged[f"{name}.weight"] - exact).abs().max() <= 1e-14, name
