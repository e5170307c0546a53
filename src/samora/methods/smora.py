"""SMoRA: Single-ranked Mixture of LoRA experts, "each rank is an expert" (arXiv 2501.15103).

```
  x ──► dropout ──┬──► router R (r x d_in) ──► sigmoid ──► s ──► + bias ──► top-k ──┐
                  │                                        │                      ▼
                  │                                        └──► s on the k chosen ranks,
                  │                                             rescaled to sum to k ──► G (diagonal)
                  │                                                                       │
                  └──► A (r x d_in) ──► h ──────────────────────────────────────────► G * h ──► B ──► *alpha/k ─► +W x
```

One LoRA of rank r whose r rank-one components ``B[:, j] A[j]`` are the experts; every token uses
k of them. ``bias`` is not trained: after each optimizer step it moves by ``u`` towards the ranks
that were chosen less than average (auxiliary-loss-free load balancing), counted over the real
tokens of the step (the model call's ``attention_mask``; padding is not counted) on every
data-parallel rank. The gate values come from s alone unless ``gate_with_bias=True`` (the released
code's s + bias).

Two paths compute the same update. ``dense`` scatters the k gates into a rank-r vector and runs
LoRA's two rank-r matmuls; ``sparse`` reads only the k chosen columns of B per token
(``embedding_bag``). Both compute the full router (all r scores are needed to choose) and the full
rank-r latent A x: gathering the k chosen rows of A per token instead was 1.3-6.3x slower than
dense (one layer, d = 576, r = 64-512, k = 8-64, CPU; a rough run on a loaded machine), since a
gather moves k d_in numbers per token that a GEMM reads once per batch. So sparse saves only B's
side. Measured on CPU (forward + backward, one layer, 1 thread, d 576-2048, r 16-256;
benchmarks/smora_dispatch.py) sparse took 0.6-0.95x the dense time below k/r = 1/32 and 1.3-3.2x
from 1/8 up; on the whole SmolLM2 training step
(``samora bench --sweep active_ranks``, r = 64) it tied at k/r = 1/64 (0.99) and lost from 1/32
(1.01-1.36x), and at r = 512, k = 8 (1/64) it was 1.09x slower. Without autograd (inference) it
took 0.62-0.95x below k/r = 1/32. ``compute="auto"`` therefore takes sparse only without autograd,
on CPU, below k/r = 1/32, and dense for every training step: the measured training crossover lies
below every k/r measured (1/64). Not measured off CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from samora.config import MethodCard, ScaledConfig, setting
from samora.methods.base import AdapterLayer
from samora.methods.registry import register

COMPUTE_MODES = ("auto", "dense", "sparse")
SPARSE_BELOW_SHARE = 1 / 32  # compute="auto", inference on CPU: sparse when top_k / r is below this (measured)


@dataclass
class SMoRAConfig(ScaledConfig):
    """SMoRA: ``y = W x + (alpha / k) B (G(x) * A x)``.

    Attributes:
        r: the number of rank-one experts (64 in the paper's main setting).
        top_k: ranks each token uses (k; 8 of 64 in the paper). With every gate equal to 1 the update
            is a rank-k LoRA with scale alpha/k, so top_k plays the part of LoRA's r. Must be at
            least 2 for the router to learn: with k = 1 the one gate is always exactly 1.
        alpha: scale numerator; the update is multiplied by ``alpha / top_k`` (16 with k = 8 gives
            LoRA's usual r = 8, alpha = 16 scale).
        bias_update_rate: u, the step of the load-balancing bias after each optimizer step
            (1e-5 in the released code). 0 turns balancing off.
        gate_with_bias: False (default, ours): the bias only chooses the k ranks and their gates
            come from the router scores s alone, as in the auxiliary-loss-free balancing the paper
            builds on (Wang et al., 2024), whose bias steers the choice only. The paper's routing
            equation does not say which; True is what the released code ran: gates from s + bias.
        compute: ``"dense"`` (two rank-r matmuls over gates that are zero off the k chosen ranks),
            ``"sparse"`` (only the k chosen columns of B per token) or ``"auto"``: sparse without
            autograd (inference) on CPU when top_k / r < 1/32, where it measured faster; dense for
            training, where sparse measured no faster at any k/r down to 1/64 (module docstring).
            Same values and gradients either way.
    """

    method = "smora"
    merge_kind = "token"
    card = MethodCard(
        title="SMoRA (Zhao et al., 2025)",
        equation="(alpha/k) B (G(x) * A x), G keeps k of the r ranks",
        router="token x (linear R, sigmoid; a non-trained balancing bias shifts the top-k choice)",
        init="A and R kaiming-uniform, B = 0, bias = 0",
        parameters="r (2 d_in + d_out)",
    )
    r: int = 64
    top_k: int = 8  # in [1, r]: checked in validate, its bound is another field
    bias_update_rate: float = setting(1e-5, ge=0)
    gate_with_bias: bool = False
    compute: str = setting("auto", choices=COMPUTE_MODES)

    @property
    def scaling(self) -> float:
        """The factor on the update: ``alpha / top_k`` (not alpha / r: k ranks are active per token)."""
        return self.alpha / self.top_k

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.top_k <= self.r:
            raise ValueError(f"top_k must be an int in [1, r={self.r}], got {self.top_k!r}; lower top_k or raise r")


@register(SMoRAConfig)
class SMoRALayer(AdapterLayer):
    """``delta(x) = (alpha / k) B (G(x) * A x)`` with a token-level diagonal gate G(x).

    Parameters and buffers (rank r, k chosen per token):
        smora_A: (r, d_in), kaiming-uniform; smora_B: (d_out, r), zero, so the layer starts as W.
        smora_router: (r, d_in) router R without bias, kaiming-uniform (as nn.Linear).
        smora_bias: (r,) buffer, saved with the adapter (it changes which ranks are chosen); zero at
            init, moved only by :meth:`after_optimizer_step`.
        smora_load: (r,) buffer, not saved: how many tokens chose each rank since the last step.
    """

    prefix = "smora_"

    def __init__(self, base_layer, config: SMoRAConfig, state, **kwargs) -> None:
        super().__init__(base_layer, config, state, **kwargs)
        r = config.r
        self.smora_A = self.adapter_parameter(r, self.in_features)
        self.smora_B = self.adapter_parameter(self.out_features, r)
        self.smora_router = self.adapter_parameter(r, self.in_features)
        self.register_buffer("smora_bias", torch.zeros(r, device=self.device, dtype=self.adapter_dtype))
        self.register_buffer("smora_load", torch.zeros(r, device=self.device, dtype=torch.long), persistent=False)
        self._counted_forward = -1  # the top-level forward whose load is already counted

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.smora_A, a=math.sqrt(5))
        nn.init.zeros_(self.smora_B)
        nn.init.kaiming_uniform_(self.smora_router, a=math.sqrt(5))
        self.smora_bias.zero_()
        self.smora_load.zero_()

    def delta(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """(alpha/k) ((x A^T) * G) B^T: (batch, ..., d_in) -> (batch, ..., d_out).

        Semantics (see :meth:`delta_reference`): ``s = sigmoid(x R^T)``; the k ranks with the largest
        ``s + bias`` are chosen; their gates are ``k s_j / sum_chosen s``, the others 0 (with
        ``gate_with_bias``: ``k (s_j + bias_j) / sum_chosen (s + bias)``).
        """
        k = self.config.top_k
        scores = torch.sigmoid(x @ self.smora_router.T)  # (..., r)
        chosen = (scores.detach() + self.smora_bias).topk(k, dim=-1).indices  # (..., k)
        picked = scores.gather(-1, chosen)
        if self.config.gate_with_bias:
            picked = picked + self.smora_bias[chosen]
        gates = k * picked / picked.sum(-1, keepdim=True)  # (..., k), on the chosen ranks
        self._count_load(chosen, x)
        latent = x @ self.smora_A.T  # (..., r)
        if self.state.record_routing:
            self.record_routing(torch.zeros_like(latent).scatter(-1, chosen, gates))
        if self.uses_sparse(x):  # sum_j w_j B[:, chosen_j] per token, w = gates * latent[chosen]
            weights = (gates * latent.gather(-1, chosen)).reshape(-1, k)
            out = F.embedding_bag(chosen.reshape(-1, k), self.smora_B.T, per_sample_weights=weights, mode="sum")
            return out.reshape(*x.shape[:-1], self.out_features) * self.config.scaling
        dense_gates = torch.zeros_like(latent).scatter(-1, chosen, gates)  # (..., r), zero off the chosen
        return (latent * dense_gates) @ self.smora_B.T * self.config.scaling

    def uses_sparse(self, x: torch.Tensor) -> bool:
        """Whether :meth:`delta` takes the sparse path for this input (see ``SMoRAConfig.compute``)."""
        compute = self.config.compute
        if compute == "auto":
            share = self.config.top_k / self.config.r
            return not torch.is_grad_enabled() and x.device.type == "cpu" and share < SPARSE_BELOW_SHARE
        return compute == "sparse"

    def delta_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """Plain path for testing: every rank-one expert's output, masked by a top-k threshold."""
        k = self.config.top_k
        scores = torch.sigmoid(x @ self.smora_router.T)
        biased = scores + self.smora_bias
        kth_largest = biased.sort(dim=-1, descending=True).values[..., k - 1 : k]
        gate_scores = biased if self.config.gate_with_bias else scores
        weights = torch.where(biased >= kth_largest, gate_scores, torch.zeros_like(scores))
        weights = k * weights / weights.sum(-1, keepdim=True)  # (..., r)
        experts = (x @ self.smora_A.T).unsqueeze(-1) * self.smora_B.T  # (..., r, d_out): h_j B[:, j]
        return (weights.unsqueeze(-1) * experts).sum(-2) * self.config.scaling

    def _count_load(self, chosen: torch.Tensor, x: torch.Tensor) -> None:
        """Add this forward's choices on real tokens to the load, once per top-level training forward.

        Tokens the model call's ``attention_mask`` marks as padding are not counted, so the load
        (and the bias) does not depend on how a batch is padded or split across data-parallel ranks
        and accumulation steps. Gradient checkpointing runs the layer again during backward under
        the same forward count; that second pass is not counted.
        """
        if not self.training or self._counted_forward == self.state.forward_count:
            return
        self._counted_forward = self.state.forward_count
        mask = self.state.token_mask_for(x)  # (batch, seq) or None: every token counts
        counts = torch.ones_like(chosen) if mask is None else mask.unsqueeze(-1).expand_as(chosen).long()
        self.smora_load.scatter_add_(0, chosen.detach().reshape(-1), counts.reshape(-1))

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """bias += u * sign(mean load - load), then reset the load; summed over data-parallel ranks."""
        load = self.smora_load
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(load)
        load = load.to(self.smora_bias.dtype)
        self.smora_bias.add_(self.config.bias_update_rate * torch.sign(load.mean() - load))
        self.smora_load.zero_()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, top_k={self.config.top_k}"
