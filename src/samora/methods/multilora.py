"""MultiLoRA (Wang et al., 2023): n parallel LoRAs, each with a learnable per-output scale.

```
        ┌──► A_1 (r x d_in) ──► B_1 (d_out x r) ──► * s_1 (d_out) ──┐
  x ──► ├──► A_2 ...                             ──► * s_2         ──┼──► sum ──► * alpha/r ──► + W x
        └──► A_n ...                             ──► * s_n         ──┘
```

Parallel LoRAs flatten the spectrum of the update that one LoRA concentrates on a few directions.
Every A_i and B_i starts random (kaiming-uniform, "ab initio"); the scales s_i start at zero, which
alone makes the adapted model equal the base at init. No router, no task id: mergeable into W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from samora.config import MethodCard, MixtureConfig, ScaledConfig
from samora.methods.base import AdapterLayer
from samora.methods.registry import register


@dataclass
class MultiLoRAConfig(ScaledConfig, MixtureConfig):
    """MultiLoRA: ``y = W x + (alpha / r) sum_i s_i * (B_i A_i x)``, s_i in R^{d_out}.

    Attributes:
        num_experts: number n of parallel LoRAs, each of rank r (3, like SAMoRA's N).
        alpha: scale numerator (update times alpha / r); 16 with r = 8 as for the other methods.
    """

    method = "multilora"
    card = MethodCard(
        title="MultiLoRA (Wang et al., 2023)",
        equation="(alpha/r) sum_i s_i * (B_i A_i x), s_i in R^d_out",
        router="none",
        init="A_i, B_i kaiming-uniform, s_i = 0",
        parameters="n (r (d_in + d_out) + d_out)",
    )


@register(MultiLoRAConfig)
class MultiLoRALayer(AdapterLayer):
    """``delta(x) = (alpha / r) sum_i s_i * (B_i A_i x)`` over n parallel rank-r LoRAs.

    Parameters (n LoRAs of rank r):
        multilora_A: (n, r, d_in) down-projections A_i; kaiming-uniform per LoRA.
        multilora_B: (n, d_out, r) up-projections B_i; kaiming-uniform per LoRA.
        multilora_scale: (n, d_out) scaling vectors s_i; zero, so the layer starts as W.
    """

    prefix = "multilora_"

    def __init__(self, base_layer, config: MultiLoRAConfig, state, **kwargs) -> None:
        super().__init__(base_layer, config, state, **kwargs)
        n, r = config.num_experts, config.r
        self.multilora_A = self.adapter_parameter(n, r, self.in_features)
        self.multilora_B = self.adapter_parameter(n, self.out_features, r)
        self.multilora_scale = self.adapter_parameter(n, self.out_features)

    def reset_parameters(self) -> None:
        for a, b in zip(self.multilora_A, self.multilora_B):  # per LoRA: fan-in of each 2-D matrix
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            nn.init.kaiming_uniform_(b, a=math.sqrt(5))
        nn.init.zeros_(self.multilora_scale)

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[A_1; ...; A_n]: (n r, d_in) and [s_1 * B_1 ... s_n * B_n]: (d_out, n r)."""
        n, r = self.config.num_experts, self.config.r
        a = self.multilora_A.reshape(n * r, self.in_features)
        scaled_b = self.multilora_B * self.multilora_scale.unsqueeze(-1)  # (n, d_out, r)
        return a, scaled_b.permute(1, 0, 2).reshape(self.out_features, n * r)

    def delta(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """(alpha/r) sum_i s_i * (B_i A_i x); x: (batch, ..., d_in) -> (batch, ..., d_out).

        Semantics: ``scaling * sum_i s_i * ((x @ A_i.T) @ B_i.T)`` (see :meth:`delta_reference`).
        Since s_i * (B_i h) = (diag(s_i) B_i) h, the n LoRAs are one LoRA of rank n r with stacked
        A (n r, d_in) and stacked scaled B (d_out, n r): two matmuls, no loop over the LoRAs.
        """
        a, b = self._stacked()
        return (x @ a.T) @ b.T * self.config.scaling

    def delta_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """Plain path for testing: each LoRA's output times its scale vector, summed."""
        parts = [s * ((x @ a.T) @ b.T) for a, b, s in zip(self.multilora_A, self.multilora_B, self.multilora_scale)]
        return torch.stack(parts).sum(0) * self.config.scaling

    def delta_weight(self, task_id: int | None = None) -> torch.Tensor:
        """(alpha/r) sum_i diag(s_i) B_i A_i: (d_out, d_in)."""
        a, b = self._stacked()
        return b @ a * self.config.scaling

    def lora_factors(self, task_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
        """s_i * (B_i A_i x) = (diag(s_i) B_i) A_i x: n rank-r LoRAs side by side are one of rank n r,
        ([diag(s_1) B_1 ... diag(s_n) B_n], [A_1; ...; A_n], alpha / r)."""
        a, scaled_b = self._stacked()  # (n r, d_in), (d_out, n r)
        return scaled_b, a, self.config.scaling
