"""What the harness measures: settings, the base model, and the contenders built on it.

A *contender* is one way of training the same base model on the same inputs:

- ``floor``: the frozen base with no adapter; forward + backward down to the input embeddings (the
  gradient every adapter needs to reach its lowest layer), no optimizer. No adapter can be faster.
- ``peft_lora``: PEFT's own LoRA at the same rank, targets and dropout, the neutral reference.
- ``method``: a method from :data:`samora.METHODS`, built from its config class defaults plus the
  shared r, targets, dropout and task names (and any per-contender overrides, e.g. N = 16).

Every contender is built on a copy of one base model that *shares* the frozen weights (only the
adapter's tensors are new), so a run can keep all of them alive and interleave them.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from samora.benchmark.settings import DTYPE_NAMES, BenchSettings
from samora.inject import get_model
from samora.methods import METHODS, get_method

FLOOR, PEFT_LORA, METHOD = "floor", "peft_lora", "method"
PEFT_LORA_ALPHA = 16.0
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


@dataclass
class Contender:
    """One way of training the base model: the floor, PEFT's LoRA, or a registered method.

    ``overrides`` replace fields of the method's config (``{"num_experts": 16}``) or, for the
    ``peft_lora`` and method kinds, the shared ``r`` (``{"r": 32}``).
    """

    name: str
    kind: str
    method: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in (FLOOR, PEFT_LORA, METHOD):
            raise ValueError(f"contender kind must be {FLOOR!r}, {PEFT_LORA!r} or {METHOD!r}, got {self.kind!r}")
        if self.kind == METHOD:
            get_method(self.method)  # a clear error naming the registered methods
        elif self.kind == PEFT_LORA and set(self.overrides) - {"r"}:
            raise ValueError(f"peft_lora only takes an 'r' override, got {sorted(self.overrides)}")

    @property
    def uses_task(self) -> bool:
        return self.kind == METHOD and get_method(self.method)[0].uses_task

    def method_config(self, settings: BenchSettings):
        """The method's config: its class defaults, then the shared settings, then the overrides."""
        config_cls, _ = get_method(self.method)
        values = {
            "r": settings.r,
            "target_modules": list(settings.targets),
            "tasks": settings.tasks,
            "dropout": settings.dropout,
            **self.overrides,
        }
        return config_cls.from_dict(values)  # rejects unknown fields, naming the valid ones

    def build(self, base: nn.Module, settings: BenchSettings) -> nn.Module:
        """A copy of ``base`` sharing its frozen weights, adapted as this contender says."""
        torch.manual_seed(settings.seed)
        model = share_frozen_weights(base)
        if self.kind == FLOOR:
            model.enable_input_require_grads()  # backward reaches the embeddings, as with an adapter
            return model
        if self.kind == PEFT_LORA:
            return peft_lora(model, settings, self.overrides.get("r", settings.r))
        return get_model(model, self.method_config(settings))

    def describe(self, settings: BenchSettings) -> dict[str, Any]:
        """What was built, for the results file."""
        if self.kind == METHOD:
            config = self.method_config(settings).to_dict()
            config.pop("base_model", None)
            return config
        if self.kind == PEFT_LORA:
            return {
                "r": self.overrides.get("r", settings.r),
                "lora_alpha": PEFT_LORA_ALPHA,
                "lora_dropout": settings.dropout,
                "target_modules": list(settings.targets),
            }
        return {}


def peft_lora(model: nn.Module, settings: BenchSettings, r: int) -> nn.Module:
    """PEFT's LoRA (``get_peft_model``) with the shared targets and dropout, at rank ``r``."""
    try:
        import peft
    except ImportError as err:
        raise ImportError("the benchmark compares against PEFT's LoRA: pip install 'samora[bench]' (peft)") from err
    config = peft.LoraConfig(
        r=r, lora_alpha=PEFT_LORA_ALPHA, target_modules=list(settings.targets), lora_dropout=settings.dropout
    )
    return peft.get_peft_model(model, config)


def share_frozen_weights(base: nn.Module) -> nn.Module:
    """A deep copy of ``base`` whose parameters and buffers are the base's own tensors (no copy)."""
    memo = {id(tensor): tensor for tensor in [*base.parameters(), *base.buffers()]}
    return copy.deepcopy(base, memo)


def default_contenders(methods: list[str] | None = None) -> list[Contender]:
    """The floor, PEFT's LoRA, then ``methods`` (default: every registered method, sorted)."""
    names = sorted(METHODS) if methods is None else methods
    return [
        Contender(FLOOR, FLOOR),
        Contender(PEFT_LORA, PEFT_LORA),
        *[Contender(name, METHOD, name) for name in names],
    ]


def expert_count(config) -> int:
    """Experts per layer: ``num_experts`` for mixtures; otherwise r (each rank an expert, as in SMoRA)."""
    return getattr(config, "num_experts", None) or config.r


def tiny_llama(seed: int = 0) -> nn.Module:
    """A 2-layer random Llama (hidden 64, 4 heads, 2 key-value heads, vocabulary 128) for smoke tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    return LlamaForCausalLM(config)


def load_bench_model(settings: BenchSettings) -> nn.Module:
    """The frozen base model named by ``settings.model``, on its device and in its dtype."""
    if settings.model == "tiny":
        model = tiny_llama(settings.seed).to(settings.torch_dtype)
    elif settings.model == "smollm2":
        from samora.models.smollm2 import load_smollm2

        model = load_smollm2(dtype=settings.torch_dtype)[0]
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(settings.model, dtype=settings.torch_dtype)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.to(settings.device)


def settings_from_dict(values: dict[str, Any]) -> BenchSettings:
    known = {f.name for f in dataclasses.fields(BenchSettings)}
    return BenchSettings(**{k: v for k, v in values.items() if k in known})
