"""Helpers for the evaluation tests: tiny random models that record the task ids they receive.

A helper module rather than a conftest.py: the project's tests import names from the top-level
tests/conftest.py with ``from conftest import ...``, which another conftest.py would shadow.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM


class RecordingLlama(LlamaForCausalLM):
    """A stand-in for a samora-adapted model: its forward accepts ``task_ids`` and records them."""

    def forward(self, input_ids=None, attention_mask=None, task_ids=None, **kwargs):
        self.recorded.append(None if task_ids is None else task_ids.tolist())
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def data_tiny_model(tokenizer, *, routed_tasks=None, seed=0, recording=True, **config):
    """A 2-layer Llama (hidden 32) over the tokenizer's vocabulary. By default a
    :class:`RecordingLlama`; with ``routed_tasks`` it carries a ``samora_adapter`` whose config
    lists those tasks, like a model adapted by samora."""
    torch.manual_seed(seed)
    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model_class = RecordingLlama if recording else LlamaForCausalLM
    model = model_class(LlamaConfig(**{**settings, **config})).eval()
    model.recorded = []
    if routed_tasks is not None:
        model.samora_adapter = SimpleNamespace(config=SimpleNamespace(method="stand-in", tasks=list(routed_tasks)))
    return model


@pytest.fixture(scope="session")
def data_model(smollm2_tokenizer):
    """A plain tiny Llama (no task_ids in its forward), shared by the tests that only score."""
    return data_tiny_model(smollm2_tokenizer, recording=False)
