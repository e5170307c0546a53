"""Adapters saved by earlier commits still load, with the same outputs.

``tests/fixtures/adapters/<method>/`` holds one adapter per method (the first case of
``tests/method_cases.py``), saved by samora at commit 41bec7e, before the house was redrawn, on
``tiny_model("llama", seed=0)`` with every adapter tensor perturbed (so no expert's B is zero), plus
``expected_logits.safetensors``: that model's logits on :data:`INPUT_IDS` for the tasks in
:data:`ROUTES`. The adapter file format is the one read path kept across versions; this test holds it.
Remake the fixtures (only when the format changes on purpose) with ``python -m tests.test_saved_adapters``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import samora
from tests.helpers import tiny_model
from tests.method_cases import METHOD_CASES

FIXTURES = Path(__file__).parent / "fixtures" / "adapters"
TASKS = ["alpha", "beta", "gamma"]
ROUTES = ["alpha", "gamma"]
INPUT_IDS = torch.tensor([[3, 17, 42, 9, 25, 61], [5, 5, 30, 12, 7, 44]])


def _logits(model) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=INPUT_IDS, task_ids=ROUTES).logits


def _first_case(method: str):
    return next(iter(METHOD_CASES[method].values()))(TASKS)


@pytest.mark.parametrize("method", sorted(METHOD_CASES))
def test_an_adapter_saved_by_an_earlier_commit_loads_with_the_same_outputs(method):
    folder = FIXTURES / method
    model = samora.load_adapter(tiny_model("llama", seed=0), folder)
    assert samora.read_adapter_config(folder)["method"] == method
    expected = load_file(folder / "expected_logits.safetensors")["logits"]
    torch.testing.assert_close(_logits(model), expected, rtol=0, atol=1e-6)


def _write_fixtures() -> None:
    for method in sorted(METHOD_CASES):
        torch.manual_seed(1)
        model = samora.get_model(tiny_model("llama", seed=0), _first_case(method))
        with torch.no_grad():
            for parameter in (p for p in model.parameters() if p.requires_grad):
                parameter.add_(0.1 * torch.randn_like(parameter))
        folder = FIXTURES / method
        samora.save_adapter(model, folder)
        save_file({"logits": _logits(model).contiguous()}, str(folder / "expected_logits.safetensors"))


if __name__ == "__main__":
    _write_fixtures()
