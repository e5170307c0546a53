"""LoRA (Hu et al., 2021): the plain low-rank baseline.

```
  x ──► A (r x d_in) ──► B (d_out x r) ──► * alpha/r ──► + W x
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from samora.config import MethodCard, ScaledConfig
from samora.methods.base import AdapterLayer
from samora.methods.registry import register


@dataclass
class LoRAConfig(ScaledConfig):
    """LoRA: ``y = W x + (alpha / r) B A x``; ``alpha`` (16) as in :class:`~samora.config.ScaledConfig`."""

    method = "lora"
    card = MethodCard(
        title="LoRA (Hu et al., 2021)",
        equation="(alpha/r) B A x",
        router="none",
        init="A kaiming-uniform, B = 0",
        parameters="r (d_in + d_out)",
    )


@register(LoRAConfig)
class LoRALayer(AdapterLayer):
    """``delta(x) = (alpha / r) B A x`` with A: (r, d_in), B: (d_out, r). A kaiming-uniform, B zero."""

    prefix = "lora_"

    def __init__(self, base_layer, config: LoRAConfig, state, **kwargs) -> None:
        super().__init__(base_layer, config, state, **kwargs)
        self.lora_A = self.adapter_parameter(config.r, self.in_features)
        self.lora_B = self.adapter_parameter(self.out_features, config.r)

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def delta(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, ..., d_in) -> (alpha/r) (x A^T) B^T: (batch, ..., d_out)."""
        return (x @ self.lora_A.T) @ self.lora_B.T * self.config.scaling

    delta_reference = delta  # LoRA's delta is its plain equation: no separate fast path

    def delta_weight(self, task_id: int | None = None) -> torch.Tensor:
        """(alpha/r) B A: (d_out, d_in)."""
        return self.lora_B @ self.lora_A * self.config.scaling

    def lora_factors(self, task_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(B, A, alpha / r) as they are: rank r."""
        return self.lora_B, self.lora_A, self.config.scaling
