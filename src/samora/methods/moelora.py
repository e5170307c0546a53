"""MoELoRA (Liu et al., SIGIR 2024, "MOELoRA"): a rank-r LoRA split into E experts, mixed per task.

```
  task id t ──► e_t (d_te) ──► softmax(W_g e_t) ──► w_1(t)..w_E(t)
                                                        │
  x ──► dropout ──► A_1..A_E (r/E x d_in each) ──► sum_i w_i(t) B_i A_i x ──► * alpha/r ──► + W x
```

Expert i is a LoRA of rank r/E, so all experts together hold exactly the parameters of one rank-r
LoRA. The gate reads only the task embedding, never the input: once the task is fixed the update is
the dense matrix ``(alpha/r) sum_i w_i(t) B_i A_i``, mergeable per task.

About the task table: the released code keeps ``task_num + 1`` embeddings per module because its
task ids start at 1; row 0 is never read, so a count of that code's parameters, ``(T+1) d_te``,
includes that unused row. Here ids start at 0 and a task id is required (no route for unseen tasks), so the table has T
rows and the count is ``r (d_in + d_out) + T d_te + E d_te``: d_te fewer per module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from samora.config import MethodCard, MixtureConfig, ScaledConfig, task_embedding_size
from samora.methods.base import AdapterLayer, NotMergeableError, per_example, require_task_ids
from samora.methods.registry import register


@dataclass
class MoELoRAConfig(ScaledConfig, MixtureConfig):
    """MoELoRA: ``y = W x + (alpha / r) sum_i softmax(W_g e_t)_i B_i A_i x``, rank r/E per expert.

    Defaults are the public scripts' settings (r = 16 split over E = 8 experts, d_te = 64), with
    alpha = 2 r as for the other methods here.

    Attributes:
        r: total rank, split evenly over the experts; must be divisible by ``num_experts``.
        num_experts: number of experts E; each has rank r / E.
        alpha: scale numerator (update times alpha / r, r being the total rank).
        task_dim: size d_te of the task embedding e_t that the gate W_g reads.
    """

    method = "moelora"
    uses_task = True
    requires_task = True
    merge_kind = "per_task"
    card = MethodCard(
        title="MoELoRA (Liu et al., 2024)",
        equation="(alpha/r) sum_i softmax(W_g e_t)_i B_i A_i x, rank r/E per expert",
        router="task id t only (embedding e_t)",
        init="A_i ~ N(0, 0.01^2), B_i = 0, e_t ~ N(0, 1), W_g kaiming-uniform",
        parameters="r (d_in + d_out) + T d_te + E d_te",
    )
    r: int = 16
    num_experts: int = 8
    alpha: float = 32.0
    task_dim: int = task_embedding_size(64)

    def validate(self) -> None:
        super().validate()
        if self.r % self.num_experts:
            raise ValueError(
                f"r must be divisible by num_experts (each of the {self.num_experts} experts gets rank "
                f"r / num_experts), got r={self.r}; choose r from "
                f"{[self.num_experts * k for k in (1, 2, 4)]} or change num_experts"
            )


@register(MoELoRAConfig)
class MoELoRALayer(AdapterLayer):
    """``delta(x) = (alpha / r) sum_i w_i(t) B_i A_i x`` with ``w(t) = softmax(W_g e_t)``.

    Parameters (E experts of rank k = r / E, T tasks, task dim d_te):
        moelora_A: (E, k, d_in) down-projections A_i; N(0, 0.01^2) as in the public code.
        moelora_B: (E, d_out, k) up-projections B_i; zero, so the layer starts as W.
        moelora_task_embedding: (T, d_te) e_t; N(0, 1) (nn.Embedding's default).
        moelora_gate: (E, d_te) W_g, no bias; kaiming-uniform (nn.Linear's default).
    """

    prefix = "moelora_"

    def __init__(self, base_layer, config: MoELoRAConfig, state, **kwargs) -> None:
        super().__init__(base_layer, config, state, **kwargs)
        e, k = config.num_experts, config.r // config.num_experts
        self.moelora_A = self.adapter_parameter(e, k, self.in_features)
        self.moelora_B = self.adapter_parameter(e, self.out_features, k)
        self.moelora_task_embedding = self.adapter_parameter(self.num_tasks, config.task_dim)
        self.moelora_gate = self.adapter_parameter(e, config.task_dim)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.moelora_A, mean=0.0, std=0.01)
        nn.init.zeros_(self.moelora_B)
        nn.init.normal_(self.moelora_task_embedding)
        nn.init.kaiming_uniform_(self.moelora_gate, a=math.sqrt(5))

    def expert_weights(self) -> torch.Tensor:
        """w: (T, E) = softmax(W_g e_t) for every task."""
        return torch.softmax(self.moelora_task_embedding @ self.moelora_gate.T, dim=-1)

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[A_1; ...; A_E]: (r, d_in) and [B_1 ... B_E]: (d_out, r), expert i owning ranks i k..(i+1) k."""
        a = self.moelora_A.reshape(self.config.r, self.in_features)
        b = self.moelora_B.permute(1, 0, 2).reshape(self.out_features, self.config.r)
        return a, b

    def _weights(self, task_ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        weights = self.expert_weights()[task_ids]  # (batch, E)
        if self.state.record_routing:
            recorded = per_example(weights, x[..., :1])
            self.record_routing(recorded.expand(*x.shape[:-1], weights.shape[-1]))
        return weights

    def delta(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """(alpha/r) sum_i w_i(t) B_i A_i x; x: (batch, ..., d_in) -> (batch, ..., d_out).

        Semantics: ``scaling * sum_i w[t, i] * (x @ A_i.T) @ B_i.T`` (see :meth:`delta_reference`).
        The experts are the rank blocks of one rank-r LoRA, so it is computed as one: h = x A^T with
        the stacked A (r, d_in), each example's rank block i scaled by w_i(t), then times the stacked
        B (d_out, r). Same cost as a rank-r LoRA.
        """
        task_ids = require_task_ids(task_ids, self.config.method)
        weights = self._weights(task_ids, x)
        a, b = self._stacked()
        per_rank = weights.repeat_interleave(self.config.r // self.config.num_experts, dim=-1)  # (batch, r)
        h = x @ a.T  # (batch, ..., r)
        return ((h * per_example(per_rank, h)) @ b.T) * self.config.scaling

    def delta_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """Plain path for testing: every expert's LoRA output, weighted by its task weight."""
        task_ids = require_task_ids(task_ids, self.config.method)
        weights = self._weights(task_ids, x)
        outputs = torch.stack([(x @ a.T) @ b.T for a, b in zip(self.moelora_A, self.moelora_B)], dim=-2)
        return (per_example(weights, outputs[..., 0]).unsqueeze(-1) * outputs).sum(-2) * self.config.scaling

    def delta_weight(self, task_id: int | None = None) -> torch.Tensor:
        """(alpha/r) sum_i w_i(t) B_i A_i for one task t: (d_out, d_in)."""
        b, a, scale = self.lora_factors(task_id)
        return b @ a * scale

    def lora_factors(self, task_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Expert i owns rank block i of one rank-r LoRA; task t scales that block of B by w_i(t):
        ([w_1(t) B_1 ... w_E(t) B_E], [A_1; ...; A_E], alpha / r)."""
        if task_id is None or not 0 <= task_id < self.num_tasks:
            raise NotMergeableError(
                f"MoELoRA's update depends on the task: give a task id in [0, {self.num_tasks}) "
                f"(samora.merge_for_task(model, task)), got {task_id!r}"
            )
        a, b = self._stacked()  # (r, d_in), (d_out, r)
        per_rank = self.expert_weights()[task_id].repeat_interleave(self.config.r // self.config.num_experts)
        return b * per_rank, a, self.config.scaling
