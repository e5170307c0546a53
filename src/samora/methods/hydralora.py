"""HydraLoRA (Tian et al., NeurIPS 2024): one shared A, several B heads, a router on the input.

```
  x ──► [dropout] ──► router R (linear or MLP) ──► softmax ──► g_1..g_N (per token)
  │                                                                │
  └──► dropout ──► A (r x d_in) ──► h ──► sum_i g_i B_i h ──► * alpha/r ──► + W x
```

The router sees dropout(x) by default (``router_input="dropout"``), or the clean x as the released
HydraLoRA code does (``router_input="input"``).

An asymmetric mixture: the down-projection A is shared, only the up-projections B_i are experts.
The router sees each token, so the mixture changes per token and the adapter can never be folded
into fixed weights. It ignores task ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from samora.config import MethodCard, MixtureConfig, ScaledConfig, setting
from samora.methods.base import AdapterLayer, mix_experts, stack_experts
from samora.methods.registry import register


@dataclass
class HydraLoRAConfig(ScaledConfig, MixtureConfig):
    """HydraLoRA: ``y = W x + (alpha / r) sum_i softmax(R x)_i B_i A x``.

    Attributes:
        alpha: scale numerator (update times alpha / r). 16 with r = 8 keeps alpha / r = 2 as for
            the other methods here; the public HydraLoRA scripts use r = 4, alpha = 32, 4 B heads.
        router: ``"linear"``: softmax of a bias-free linear map R x (N d_in parameters), as in the
            paper; ``"mlp"``: softmax of R_2 relu(R_1 x) with a hidden layer of ``router_hidden``
            units (router_hidden (d_in + N) parameters), for a router that can separate inputs a
            linear map cannot.
        router_hidden: hidden width of the MLP router; ignored by the linear router.
        router_input: what the router sees. ``"dropout"`` (default; the paper is silent on dropout):
            the same dropout(x) as A, as every other router here; ``"input"``: the clean x, as the
            released HydraLoRA code does (dropout then only reaches A x). The two agree in eval mode.
    """

    method = "hydralora"
    merge_kind = "token"
    card = MethodCard(
        title="HydraLoRA (Tian et al., 2024)",
        equation="(alpha/r) sum_i softmax(R x)_i B_i A x",
        router="token x (linear R, or a ReLU MLP)",
        init="A and R kaiming-uniform, B_i = 0",
        parameters="r d_in + N r d_out + N d_in (linear router)",
    )
    router: str = setting("linear", choices=("linear", "mlp"))
    router_hidden: int = setting(32, ge=1, meaning="hidden width of the MLP router")
    router_input: str = setting("dropout", choices={"dropout": "route on dropout(x)", "input": "on x"})


@register(HydraLoRAConfig)
class HydraLoRALayer(AdapterLayer):
    """``delta(x) = (alpha / r) sum_i g_i(x) B_i A x`` with ``g(x) = softmax(R x)`` over N heads.

    Parameters (N heads, rank r, hidden width h of the MLP router):
        hydralora_A: (r, d_in) shared down-projection; kaiming-uniform.
        hydralora_B: (N, d_out, r) heads B_i; zero, so the layer starts as W.
        hydralora_router: (N, d_in) for the linear router, (N, h) for the MLP router; kaiming-uniform.
        hydralora_router_hidden: (h, d_in), first MLP layer, only with ``router="mlp"``.
    """

    prefix = "hydralora_"

    def __init__(self, base_layer, config: HydraLoRAConfig, state, **kwargs) -> None:
        super().__init__(base_layer, config, state, **kwargs)
        r, n = config.r, config.num_experts
        self.hydralora_A = self.adapter_parameter(r, self.in_features)
        self.hydralora_B = self.adapter_parameter(n, self.out_features, r)
        if config.router == "mlp":
            self.hydralora_router_hidden = self.adapter_parameter(config.router_hidden, self.in_features)
            self.hydralora_router = self.adapter_parameter(n, config.router_hidden)
        else:
            self.hydralora_router = self.adapter_parameter(n, self.in_features)
        # router_input="input": the base forward passes the clean x and only A's input is dropped out.
        self.latent_dropout = nn.Identity()
        if config.router_input == "input":
            self.latent_dropout, self.dropout = self.dropout, nn.Identity()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.hydralora_A, a=math.sqrt(5))
        nn.init.zeros_(self.hydralora_B)
        nn.init.kaiming_uniform_(self.hydralora_router, a=math.sqrt(5))
        if self.config.router == "mlp":
            nn.init.kaiming_uniform_(self.hydralora_router_hidden, a=math.sqrt(5))

    def router_weights(self, x: torch.Tensor) -> torch.Tensor:
        """g: (batch, ..., N) = softmax(R x), or softmax(R_2 relu(R_1 x)) for the MLP router."""
        if self.config.router == "mlp":
            x = torch.relu(x @ self.hydralora_router_hidden.T)
        return torch.softmax(x @ self.hydralora_router.T, dim=-1)

    def _latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gates = self.router_weights(x)  # (batch, ..., N)
        self.record_routing(gates)
        return gates, self.latent_dropout(x) @ self.hydralora_A.T  # h: (batch, ..., r)

    def delta(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """(alpha/r) sum_i g_i B_i A x; x: (batch, ..., d_in) -> (batch, ..., d_out).

        Semantics: ``scaling * sum_i g[..., i, None] * (h @ B_i.T)`` with h = A x (see
        :meth:`delta_reference`). Computed as one matmul: the gated latents (g_i h)_i of size N r
        times the stacked heads [B_1 ... B_N] (d_out, N r); no (batch, seq, N, d_out) tensor.
        """
        gates, h = self._latent(x)
        stacked = self.constant("stacked_B", lambda: stack_experts(self.hydralora_B))
        return mix_experts(gates, h, stacked) * self.config.scaling

    def delta_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """Plain path for testing: every head's full output, then the weighted sum."""
        gates, h = self._latent(x)
        outputs = torch.stack([h @ b.T for b in self.hydralora_B], dim=-2)  # (batch, ..., N, d_out)
        return (gates.unsqueeze(-1) * outputs).sum(-2) * self.config.scaling
