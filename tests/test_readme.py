"""The README's custom training loop, run as written on tiny models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import samora
from tests.helpers import tiny_model

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "# A custom training loop"


def readme_loop() -> str:
    """The README's python block that starts with the custom-loop marker."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    loops = [block for block in blocks if block.startswith(MARKER)]
    assert len(loops) == 1, f"README.md must hold exactly one python block starting with {MARKER!r}"
    return loops[0]


def batches(tasks: list[str], steps: int = 3) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for step in range(steps):
        ids = torch.randint(3, 64, (2, 8), generator=generator)
        out.append(
            {
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
                "labels": ids,
                "task_ids": [tasks[step % len(tasks)]] * 2 if tasks else None,
            }
        )
    return out


def run_loop(model, loader) -> dict:
    namespace = {"model": model, "loader": loader}
    exec(compile(readme_loop(), str(README), "exec"), namespace)
    return namespace


def test_readme_loop_rebalances_smora():
    """SMoRA's bias moves only through after_optimizer_step: the README loop must call it."""
    model = samora.get_model(tiny_model(), samora.SMoRAConfig(r=8, top_k=2))
    run_loop(model, batches([]))
    biases = [layer.smora_bias for layer in model.samora_adapter.layers.values()]
    assert all(bias.abs().sum() > 0 for bias in biases)


def test_readme_loop_trains_samora_with_its_regularisers():
    config = samora.SAMoRAConfig(r=4, tasks=["a", "b"], lambda_orth=0.1)
    model = samora.get_model(tiny_model(), config)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    namespace = run_loop(model, batches(["a", "b"]))
    assert set(namespace["terms"]) == {"task", "orth", "match"} and namespace["terms"]["orth"] > 0
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)
    assert namespace["out"].loss.item() == pytest.approx(sum(namespace["terms"].values()), rel=1e-5)
