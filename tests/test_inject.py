"""Injection: target selection (names, suffixes, regex; Linear and Conv1D), freezing, unload, counts."""

from __future__ import annotations

import pytest
import torch

import samora
from samora.inject import adapter_or_none
from tests.helpers import tiny_model


def adapted_names(model):
    return sorted(model.samora_adapter.layers)


def test_suffix_list_selects_matching_linears():
    model = samora.get_model(tiny_model(), samora.LoRAConfig(target_modules=["q_proj", "down_proj"]))
    assert adapted_names(model) == [
        f"model.layers.{i}.{m}" for i in range(2) for m in ("mlp.down_proj", "self_attn.q_proj")
    ]


def test_exact_full_name():
    model = samora.get_model(tiny_model(), samora.LoRAConfig(target_modules=["model.layers.1.self_attn.v_proj"]))
    assert adapted_names(model) == ["model.layers.1.self_attn.v_proj"]


def test_regex_must_match_whole_name():
    model = samora.get_model(tiny_model(), samora.LoRAConfig(target_modules=r".*layers\.0\.self_attn\.(q|v)_proj"))
    assert adapted_names(model) == ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"]


def test_gpt2_conv1d_is_adapted_and_its_weight_transposed():
    model = samora.get_model(tiny_model("gpt2"), samora.LoRAConfig(target_modules=["c_attn"]))
    layer = model.samora_adapter.layers["transformer.h.0.attn.c_attn"]
    assert (layer.in_features, layer.out_features) == (32, 96)
    assert layer.base_weight().shape == (96, 32)


def test_unmatched_entries_are_listed_with_the_linear_names():
    with pytest.raises(ValueError, match=r"matched no module: \['qkv', 'dense'\].*q_proj"):
        samora.get_model(tiny_model(), samora.LoRAConfig(target_modules=["q_proj", "qkv", "dense"]))


def test_non_linear_target_is_refused():
    with pytest.raises(ValueError, match="not linear layers.*LlamaRMSNorm"):
        samora.get_model(tiny_model(), samora.LoRAConfig(target_modules=["input_layernorm"]))


def test_everything_else_is_frozen_and_counted():
    model = tiny_model()
    total = sum(p.numel() for p in model.parameters())
    samora.get_model(model, samora.LoRAConfig(r=4))
    count = samora.trainable_parameters(model)
    # 2 layers x (q: 32->32, k: 32->16, v: 32->16, o: 32->32), LoRA r=4: r (d_in + d_out) each
    expected = 2 * 4 * ((32 + 32) + (32 + 16) + (32 + 16) + (32 + 32))
    assert count.trainable == expected and count.total == total + expected
    assert f"trainable params: {expected:,}" in str(count)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_adapting_twice_is_an_error_and_unload_restores_the_model(input_ids):
    model = tiny_model()
    model.lm_head.weight.requires_grad_(True)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    before = model(input_ids).logits
    samora.get_model(model, samora.SAMoRAConfig(tasks=["a"]))
    with pytest.raises(ValueError, match="already has a samora adapter"):
        samora.get_model(model, samora.LoRAConfig())
    samora.unload(model)
    assert not hasattr(model, "samora_adapter") and "forward" not in vars(model)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert torch.equal(model(input_ids).logits, before)


def test_task_agnostic_lora_ignores_task_ids_when_it_has_no_tasks(input_ids):
    model = samora.get_model(tiny_model(), samora.LoRAConfig())
    assert torch.equal(model(input_ids, task_ids=[5, 6, 7]).logits, model(input_ids).logits)


def test_new_layers_follow_the_model_train_eval_mode():
    model = samora.get_model(tiny_model().eval(), samora.LoRAConfig())
    assert not any(layer.training for layer in model.samora_adapter.layers.values())


def test_the_callers_config_is_not_mutated():
    config = samora.SAMoRAConfig(tasks=["a", "b"])
    before = config.to_dict()
    model = tiny_model()
    model.name_or_path = "tiny/llama"
    samora.get_model(model, config)
    assert config.to_dict() == before and config.base_model is None
    kept = samora.adapter_of(model).config
    assert kept is not config and kept.base_model == "tiny/llama"
    assert {k: v for k, v in kept.to_dict().items() if k != "base_model"} == {
        k: v for k, v in before.items() if k != "base_model"
    }
    named = samora.LoRAConfig(base_model="my/base")
    assert samora.adapter_of(samora.get_model(tiny_model(), named)).config.base_model == "my/base"
    assert named.base_model == "my/base"


def test_bound_methods_are_plain_wrappers_with_the_class_signatures():
    """forward takes the class forward's parameters plus task_ids; generate has the class's own
    signature, name and doc; save_pretrained and push_to_hub refuse, saying what to use instead."""
    import inspect

    model = samora.get_model(tiny_model(), samora.LoRAConfig())
    cls = type(model)
    forward = inspect.signature(model.forward).parameters
    assert "task_ids" in forward and set(inspect.signature(cls.forward.__get__(model)).parameters) < set(forward)
    assert forward["task_ids"].kind is inspect.Parameter.KEYWORD_ONLY and forward["task_ids"].default is None
    assert inspect.signature(model.generate) == inspect.signature(cls.generate.__get__(model))
    assert model.generate.__name__ == "generate" and model.generate.__doc__ == cls.generate.__doc__
    for name in ("save_pretrained", "push_to_hub"):
        with pytest.raises(RuntimeError, match="samora.save_adapter"):
            getattr(model, name)("/nonexistent")
    assert model.forward.__func__ is not samora.get_model(tiny_model(), samora.LoRAConfig()).forward.__func__


def test_the_adapter_of_a_model_or_none_for_a_plain_one():
    model = tiny_model()
    assert adapter_or_none(model) is None
    with pytest.raises(ValueError, match="has no samora adapter"):
        samora.adapter_of(model)
    samora.get_model(model, samora.LoRAConfig())
    assert adapter_or_none(model) is samora.adapter_of(model) is not None
