"""The contract every method must pass, on tiny Llama, Qwen3 and GPT-2 models.

init equals base; only adapter parameters train; save/load is bit-exact; a mixed-task batch equals
the per-task batches; gradient checkpointing (reentrant and not) gives the same gradients, the
regularisers' included; generate works with beams and task ids; a bf16 base stays finite; each
layer's fast path agrees with its reference path. The cases come from the registry (every method
in ``samora.METHODS``, see ``method_cases.contract_cases``), and a registered method without a case
fails.

By default on CPU in float32. ``SAMORA_TEST_DEVICE=cuda SAMORA_TEST_DTYPE=bfloat16`` runs the same
suite with the base models on that device and in that dtype (adapters stay float32, as always):
comparisons of numbers then use bf16 tolerances (:func:`assert_close`), and the two checks that
compare a batch with its rows run alone on token equality (generate) are made only in float32,
since a different batch size may pick a different GEMM kernel and flip a near-tie.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

import samora
from tests.helpers import ARCHS, TARGETS, TEST_DEVICE, TEST_DTYPE, enable_checkpointing, tiny_model
from tests.method_cases import INIT_TOLERANCE, METHOD_CASES, contract_cases, missing_cases

TASKS = ["alpha", "beta", "gamma"]
CASES = contract_cases(samora.METHODS)  # every registered method, and its variants
CASE_NAMES = list(CASES)
FULL_PRECISION = TEST_DTYPE == torch.float32
REDUCED_TOLERANCE = 2e-2  # bf16 keeps 8 bits of mantissa: ~4e-3 relative per rounding


def base_model(arch: str = "llama"):
    """The tiny model of ``arch`` on the suite's device and in its dtype."""
    return tiny_model(arch).to(TEST_DEVICE, TEST_DTYPE)


def adapted(case: str, arch: str = "llama", **overrides):
    config = dataclasses.replace(CASES[case](list(TASKS)), target_modules=TARGETS[arch], **overrides)
    return samora.get_model(base_model(arch), config)


def assert_close(actual, expected, *, atol: float, rtol: float, message: str = "") -> None:
    """|actual - expected| <= atol + rtol |expected| at the given float32 tolerances, or at bf16 ones
    (relative to the largest |expected|) when the suite runs in reduced precision."""
    if not FULL_PRECISION:
        atol, rtol = REDUCED_TOLERANCE * expected.abs().max().item(), REDUCED_TOLERANCE
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=message or None)


@pytest.fixture
def input_ids(input_ids):
    """The shared token ids, on the suite's device."""
    return input_ids.to(TEST_DEVICE)


def perturb(model, seed: int = 0, scale: float = 0.1) -> None:
    """Move every trainable adapter parameter off its init, so all of them get gradients."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(scale * torch.randn(parameter.shape, generator=generator).to(parameter))


def test_every_registered_method_has_a_case():
    assert missing_cases(samora.METHODS) == [], "add a case to METHOD_CASES in tests/method_cases.py"
    for method, cases in METHOD_CASES.items():
        assert method in samora.METHODS, f"METHOD_CASES names {method!r}, which is not a registered method"
        assert {build(list(TASKS)).method for build in cases.values()} == {method}, method


def test_a_registered_method_without_a_case_is_caught(monkeypatch):
    """Register a new method the way a method file does; the suite then has a failing case for it."""
    from samora.methods import registry
    from samora.methods.lora import LoRALayer

    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))

    @dataclasses.dataclass
    class UncoveredConfig(samora.LoRAConfig):
        method = "uncovered"

    @registry.register(UncoveredConfig)
    class UncoveredLayer(LoRALayer):
        pass

    assert registry.METHODS["uncovered"] == (UncoveredConfig, UncoveredLayer)
    assert missing_cases(registry.METHODS) == ["uncovered"]
    cases = contract_cases(registry.METHODS)
    with pytest.raises(pytest.fail.Exception, match="'uncovered' is registered but has no case"):
        cases["uncovered (no case)"](list(TASKS))
    assert set(cases) >= set(CASES)


@pytest.mark.parametrize("case", CASE_NAMES)
def test_fast_path_agrees_with_reference_path(case):
    """``output`` (the fast path a forward takes) equals ``output_reference`` on random inputs, task ids
    including an unseen one where the method has a route for it, with every parameter off its init."""
    model = adapted(case)
    perturb(model)
    model.eval()
    config = model.samora_adapter.config
    task_ids = torch.tensor([0, 2, 1] if config.requires_task else [0, -1, 2], device=TEST_DEVICE)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, layer in model.samora_adapter.layers.items():
            dtype = layer.base_layer.weight.dtype
            x = torch.randn(3, 5, layer.in_features, generator=generator).to(TEST_DEVICE, dtype)
            fast, reference = layer.output(x, task_ids), layer.output_reference(x, task_ids)
            assert_close(fast.to(reference.dtype), reference, atol=1e-5, rtol=1e-5, message=name)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_init_equals_base(case, arch, input_ids):
    base = base_model(arch)(input_ids).logits
    model = adapted(case, arch)
    assert_close(model(input_ids, task_ids=[0, 1, 2]).logits, base, atol=INIT_TOLERANCE.get(case, 1e-6), rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_only_adapter_parameters_train(case, arch, input_ids):
    model = adapted(case, arch)
    model.train()
    perturb(model)
    model(input_ids, labels=input_ids, task_ids=[0, 1, 2]).loss.backward()
    adapter_names = {
        f"{name}.{key}"
        for name, layer in model.samora_adapter.layers.items()
        for key, _ in layer.named_parameters()
        if not key.startswith("base_layer.")
    }
    for name, parameter in model.named_parameters():
        if name in adapter_names:
            assert parameter.requires_grad and parameter.grad is not None, name
            assert parameter.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
        else:
            assert not parameter.requires_grad and parameter.grad is None, name
    assert samora.trainable_parameters(model).trainable == sum(
        p.numel() for n, p in model.named_parameters() if n in adapter_names
    )


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_save_load_round_trip_is_bit_exact(case, arch, input_ids, tmp_path):
    model = adapted(case, arch)
    perturb(model)
    expected = model(input_ids, task_ids=[2, 0, 1]).logits
    samora.save_adapter(model, tmp_path)
    loaded = samora.load_adapter(base_model(arch), tmp_path).eval()
    assert torch.equal(loaded(input_ids, task_ids=[2, 0, 1]).logits, expected)
    saved = samora.read_adapter_config(tmp_path)
    assert saved["method"] == CASES[case](list(TASKS)).method and saved["tasks"] == TASKS


@pytest.mark.parametrize("case", CASE_NAMES)
def test_mixed_task_batch_equals_per_task_batches(case, input_ids):
    model = adapted(case)
    perturb(model)
    mixed = model(input_ids, task_ids=["alpha", "beta", "gamma"]).logits
    for row, task in enumerate(TASKS):
        alone = model(input_ids[row : row + 1], task_ids=[task]).logits
        assert_close(alone, mixed[row : row + 1], atol=1e-5, rtol=1e-5, message=task)


@pytest.mark.parametrize("reentrant", [True, False])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_gradient_checkpointing_gives_identical_gradients(case, reentrant, input_ids):
    def gradients(checkpointing: bool):
        model = adapted(case, dropout=0.0)
        perturb(model)
        if checkpointing:
            enable_checkpointing(model, reentrant)
        model.train()
        model(input_ids, labels=input_ids, task_ids=[0, 1, 2]).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and plain
    for name in plain:
        assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5, message=name)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("case", CASE_NAMES)
def test_generate_with_beams_and_task_ids(case, arch, input_ids):
    model = adapted(case, arch)
    perturb(model)
    options = dict(max_new_tokens=4, do_sample=False, num_beams=3, pad_token_id=0)
    batched = model.generate(input_ids, task_ids=["alpha", "beta", "gamma"], num_return_sequences=2, **options)
    assert batched.shape == (6, input_ids.shape[1] + 4)
    as_tensor = model.generate(input_ids, task_ids=torch.tensor([0, 1, 2]), num_return_sequences=2, **options)
    assert torch.equal(batched, as_tensor)
    for row, task in enumerate(TASKS if FULL_PRECISION else []):
        alone = model.generate(input_ids[row : row + 1], task_ids=[task], num_return_sequences=2, **options)
        assert torch.equal(alone, batched[2 * row : 2 * row + 2]), task
    greedy = model.generate(input_ids, task_ids=[0, 1, 2], max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert greedy.shape == (3, input_ids.shape[1] + 3)


@pytest.mark.parametrize("case", CASE_NAMES)
def test_generate_keeps_parameter_only_values_for_one_call_only(case, input_ids):
    """Inside generate, layers reuse values of their parameters alone (keys, stacked experts, gates):
    the scores equal the class's own generate, which recomputes them per token, and a parameter
    changed between calls (even through .data, which no version counter sees) is picked up."""
    model = adapted(case)
    perturb(model)
    options = dict(
        max_new_tokens=4,
        do_sample=False,
        pad_token_id=0,
        output_scores=True,
        return_dict_in_generate=True,
        task_ids=[0, 1, 2],
    )

    def scores(generate):
        return torch.stack(generate(input_ids, **options).scores)

    assert_close(scores(model.generate), scores(type(model).generate.__get__(model)), rtol=1e-6, atol=1e-6)
    assert model.samora_adapter.state.constants is None  # nothing kept after the call
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.data.mul_(1.5)
    assert_close(scores(model.generate), scores(type(model).generate.__get__(model)), rtol=1e-6, atol=1e-6)
    assert inspect.signature(model.generate) == inspect.signature(type(model).generate.__get__(model))
    assert "generate" not in samora.unload(model).__dict__


@pytest.mark.parametrize("case", CASE_NAMES)
def test_forward_without_task_ids(case, input_ids):
    model = adapted(case)
    perturb(model)
    if model.samora_adapter.config.requires_task:
        with pytest.raises(ValueError, match="task_ids"):
            model(input_ids)
    else:
        assert torch.isfinite(model(input_ids).logits).all()


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bf16_base_keeps_fp32_adapter_and_finite_outputs(case, input_ids):
    config = dataclasses.replace(CASES[case](list(TASKS)), target_modules=TARGETS["llama"])
    model = samora.get_model(tiny_model("llama").to(TEST_DEVICE, torch.bfloat16), config)
    perturb(model)
    model.train()
    out = model(input_ids, labels=input_ids, task_ids=[0, 1, 2])
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits).all()
    out.loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in trainable)


@pytest.mark.parametrize("case", CASE_NAMES)
def test_unknown_task_and_out_of_range_id_are_clear_errors(case, input_ids):
    model = adapted(case)
    with pytest.raises(ValueError, match="known tasks.*alpha"):
        model(input_ids, task_ids=["alpha", "nope", "beta"])
    with pytest.raises(ValueError, match="out of range"):
        model(input_ids, task_ids=[0, 1, 7])
