"""generate with task ids: every mix of cache, beams, returned sequences and id forms, on a decoder-only
model and on an encoder-decoder (T5) model, whose encoder generate calls directly."""

from __future__ import annotations

import pytest
import torch

import samora
from tests.helpers import VOCAB, tiny_model

TASKS = ["a", "b"]


def perturbed(model):
    """Adapter weights far from init, so that the two tasks route differently."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator))
    return model


def adapted_llama():
    return perturbed(samora.get_model(tiny_model(), samora.SAMoRAConfig(r=4, tasks=TASKS)))


def adapted_t5():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        dropout_rate=0.0,
    )
    model = T5ForConditionalGeneration(config).eval()
    return perturbed(
        samora.get_model(model, samora.SAMoRAConfig(r=4, tasks=TASKS, target_modules=["q", "k", "v", "o"]))
    )


PROMPTS = torch.randint(3, VOCAB, (2, 5), generator=torch.Generator().manual_seed(3))


def generate(model, prompts, task_ids, **options):
    return model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        task_ids=task_ids,
        max_new_tokens=4,
        do_sample=False,
        **options,
    )


def per_example(model, **options):
    """Each prompt generated alone with its own task: what a mixed batch must reproduce."""
    return [generate(model, PROMPTS[i : i + 1], task, **options) for i, task in enumerate(TASKS)]


def rows_of(output, example, rows):
    return output[example * rows : (example + 1) * rows]


OPTIONS = [
    (cache, beams, returned, "names") for cache in (True, False) for beams, returned in ((1, 1), (3, 1), (3, 3))
]
OPTIONS += [(False, 3, 3, "tensor"), (True, 3, 2, "per_row")]


@pytest.mark.parametrize("make", [adapted_llama, adapted_t5], ids=["llama", "t5"])
@pytest.mark.parametrize("use_cache,beams,returned,form", OPTIONS)
def test_a_mixed_task_batch_generates_what_each_example_generates_alone(make, use_cache, beams, returned, form):
    model = make()
    options = dict(use_cache=use_cache, num_beams=beams, num_return_sequences=returned)
    rows = max(beams, returned)
    task_ids = {
        "names": TASKS,
        "tensor": torch.tensor([0, 1]),
        "per_row": [task for task in TASKS for _ in range(rows)],
    }[form]
    expected = per_example(model, **options)
    unrelated = dict(decoder_input_ids=PROMPTS[:1].repeat(3, 2)) if make is adapted_t5 else {}
    model(PROMPTS[:1].repeat(3, 1), task_ids=["b", "b", "b"], **unrelated)  # an unrelated call first
    mixed = generate(model, PROMPTS, task_ids, **options)
    assert mixed.shape[0] == 2 * returned
    for example in range(2):
        assert torch.equal(rows_of(mixed, example, returned), expected[example]), f"example {example}"


def test_the_two_tasks_generate_differently():
    """The fixture routes the tasks apart, so the comparisons above are not vacuous."""
    for make in (adapted_llama, adapted_t5):
        model = make()
        assert not torch.equal(generate(model, PROMPTS, ["a", "a"]), generate(model, PROMPTS, ["b", "b"]))


def greedy_by_forward(model, prompts, task_ids, steps=4):
    """Reference greedy decoding of a T5 model by full forwards (no cache, no generate)."""
    decoded = torch.zeros(prompts.shape[0], 1, dtype=torch.long)  # decoder_start_token_id
    for _ in range(steps):
        logits = model(input_ids=prompts, decoder_input_ids=decoded, task_ids=task_ids).logits
        decoded = torch.cat([decoded, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return decoded


@pytest.mark.parametrize("use_cache", [True, False])
def test_t5_generate_routes_its_encoder_with_this_calls_task_ids(use_cache):
    model = adapted_t5()
    expected = greedy_by_forward(model, PROMPTS, ["b", "a"])
    model(PROMPTS, decoder_input_ids=PROMPTS[:, :2], task_ids=["a", "b"])  # the previous call's ids differ
    got = generate(model, PROMPTS, ["b", "a"], use_cache=use_cache)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("make", [adapted_llama, adapted_t5], ids=["llama", "t5"])
@pytest.mark.parametrize("task_ids", [["a"], ["a", "b", "a"], ["a"] * 5])
def test_a_task_ids_list_fitting_neither_the_batch_nor_its_rows_is_an_error(make, task_ids):
    model = make()
    with pytest.raises(ValueError, match=r"entries for a generate batch of 2 examples; give one id per example"):
        generate(model, PROMPTS, task_ids, num_beams=3)


def test_generate_without_task_ids_for_a_task_routed_method_is_an_error():
    model = samora.get_model(tiny_model(), samora.MTLLoRAConfig(r=4, tasks=TASKS))
    with pytest.raises(ValueError, match="needs task_ids"):
        model.generate(PROMPTS, max_new_tokens=2)
