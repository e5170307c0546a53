"""What an adapted model does with transformers' own model methods: save_pretrained / push_to_hub are
refused with directions (they would write a checkpoint that reloads with random base weights), and a
cast of the whole model (``.to(torch.bfloat16)``) keeps every method working."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import samora
from tests.helpers import TARGETS, tiny_model
from tests.method_cases import CASES

TASKS = ["alpha", "beta", "gamma"]


def adapted(case: str, base=None, **options):
    config = dataclasses.replace(CASES[case](list(TASKS)), target_modules=TARGETS["llama"])
    return samora.get_model(base if base is not None else tiny_model(), config, **options)


def perturb(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=generator).to(p))
    return model


@pytest.mark.parametrize("method", ["save_pretrained", "push_to_hub"])
def test_save_pretrained_and_push_to_hub_are_refused_with_what_to_use_instead(tmp_path, method):
    model = perturb(adapted("lora"))
    with pytest.raises(RuntimeError, match=r"samora.save_adapter\(model, folder\).*samora.merge\(model\)"):
        getattr(model, method)(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_merged_model_saves_with_save_pretrained_and_reloads_equal(tmp_path, input_ids):
    from transformers import AutoModelForCausalLM

    model = perturb(adapted("lora"))
    expected = model(input_ids).logits
    merged = samora.merge(model)
    merged.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(input_ids).logits, expected, atol=1e-5, rtol=1e-5)


def test_unload_restores_the_class_save_pretrained(tmp_path):
    model = samora.unload(adapted("samora"))
    assert "save_pretrained" not in vars(model) and "push_to_hub" not in vars(model)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file()


NO_BF16_CPU_KERNEL = pytest.mark.xfail(
    raises=NotImplementedError,
    strict=True,
    reason="MoORE's Householder solve has no bf16 CPU kernel (get_model(adapter_dtype=torch.bfloat16) fails alike)",
)


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=NO_BF16_CPU_KERNEL) if c == "moore" else c for c in sorted(CASES)]
)
def test_casting_the_adapted_model_to_bf16_keeps_it_working(case, input_ids):
    model = perturb(adapted(case))
    task_ids = [0, 1, 2]
    float32 = model(input_ids, task_ids=task_ids).logits
    model.to(torch.bfloat16)
    cast = model(input_ids, task_ids=task_ids).logits
    assert cast.dtype == torch.bfloat16 and torch.isfinite(cast).all()
    if case != "smora":  # top-k routing: bf16 rounding may select other ranks
        torch.testing.assert_close(cast.float(), float32, atol=0.1, rtol=0.05)
    direct = adapted(case, base=tiny_model().to(torch.bfloat16), adapter_dtype=torch.bfloat16)
    with torch.no_grad():  # every tensor, non-persistent buffers included
        for mine, theirs in zip([*direct.parameters(), *direct.buffers()], [*model.parameters(), *model.buffers()]):
            mine.copy_(theirs)
    assert torch.equal(direct(input_ids, task_ids=task_ids).logits, cast)  # as if built in bf16
    model.generate(input_ids, task_ids=task_ids, max_new_tokens=2, do_sample=False)
    model.to(torch.float32)
    assert model(input_ids, task_ids=task_ids).logits.dtype == torch.float32


def test_training_after_a_cast_updates_the_adapter_in_its_new_dtype(input_ids):
    model = perturb(adapted("samora")).to(torch.bfloat16).train()
    model(input_ids, labels=input_ids, task_ids=[0, 1, 2]).loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.dtype == torch.bfloat16 and torch.isfinite(g).all() for g in grads)


def test_regularisers_are_computed_only_where_a_loss_can_train_on_them(input_ids):
    """Each layer keeps its regulariser terms from its own forward (where FSDP and ZeRO-3 have its
    parameters whole) in training; a forward without gradients (scoring, evaluation) does none of that work."""
    model = samora.get_model(tiny_model(), samora.SAMoRAConfig(r=4, tasks=["a", "b"]))
    layers = list(samora.adapter_of(model).layers.values())
    task_ids = ["a"] * input_ids.shape[0]
    with torch.no_grad():
        model(input_ids=input_ids, task_ids=task_ids)
    assert all(layer._regulariser_terms is None for layer in layers)
    out = model(input_ids=input_ids, labels=input_ids, task_ids=task_ids)
    assert set(samora.adapter_of(model).last_losses) >= {"orth", "match"} and out.loss.requires_grad
