"""MTL-LoRA (Yang et al., AAAI 2025): LoRA with a task-specific transform between A and B.

```
  task id t ──► Lambda_t (r x r)          w_t (N) ──► softmax(w_t / tau) ──► p_t1..p_tN
                   │                                                            │
  x ──► dropout ──► A (r x d_in) ──► Lambda_t A x ──► sum_i p_ti B_i (Lambda_t A x) ──► * alpha/r ──► + W x
```

A is shared by all tasks; each task t owns a transform Lambda_t (full r x r, or diagonal) and a
softmax mixture p_t over N shared up-projections B_i. Everything task-specific depends on the task
id only, so once the task is fixed the update is the dense matrix
``(alpha/r) (sum_i p_ti B_i) Lambda_t A``: mergeable per task, and without a route for unseen tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from samora.config import MethodCard, MixtureConfig, ScaledConfig, setting
from samora.methods.base import AdapterLayer, NotMergeableError, per_example, require_task_ids
from samora.methods.registry import register


@dataclass
class MTLLoRAConfig(ScaledConfig, MixtureConfig):
    """MTL-LoRA: ``y = W x + (alpha / r) sum_i softmax(w_t / tau)_i B_i Lambda_t A x``.

    Defaults are the public scripts' settings: r = 8, alpha = 16, N = 3 up-projections, tau = 0.1.

    Attributes:
        alpha: scale numerator (update times alpha / r).
        temperature: tau in softmax(w_t / tau). Small tau lets each task commit to a few of the N
            up-projections; 0.1 in the public scripts.
        task_transform: ``"full"``: Lambda_t is a full r x r matrix (T r^2 parameters), as in the
            paper; ``"diagonal"``: only its diagonal (T r parameters), the code's cheaper option.
    """

    method = "mtllora"
    uses_task = True
    requires_task = True
    merge_kind = "per_task"
    card = MethodCard(
        title="MTL-LoRA (Yang et al., 2025)",
        equation="(alpha/r) sum_i softmax(w_t / tau)_i B_i Lambda_t A x",
        router="task id t only (w_t, Lambda_t)",
        init="A kaiming-uniform, Lambda_t = I, B_i = 0, w_t kaiming-uniform",
        parameters="r d_in + N r d_out + T r^2 + T N (full Lambda_t)",
    )
    temperature: float = setting(0.1, gt=0)
    task_transform: str = setting("full", choices=("full", "diagonal"))


@register(MTLLoRAConfig)
class MTLLoRALayer(AdapterLayer):
    """``delta(x) = (alpha / r) sum_i p_ti B_i Lambda_t A x`` with ``p_t = softmax(w_t / tau)``.

    Parameters (N up-projections, rank r, T tasks):
        mtllora_A: (r, d_in) shared down-projection; kaiming-uniform.
        mtllora_lambda: (T, r, r) task transforms Lambda_t, identity; (T, r) ones when diagonal.
        mtllora_B: (N, d_out, r) shared up-projections B_i; zero, so the layer starts as W.
        mtllora_mix: (T, N) mixture logits w_t; kaiming-uniform, U(-1/sqrt N, 1/sqrt N) as in the
            public code. Random, not zero: with zero logits and zero B_i every B_i gets the same
            gradient and they would stay identical forever.
    """

    prefix = "mtllora_"

    def __init__(self, base_layer, config: MTLLoRAConfig, state, **kwargs) -> None:
        super().__init__(base_layer, config, state, **kwargs)
        r, n, t = config.r, config.num_experts, self.num_tasks
        self.mtllora_A = self.adapter_parameter(r, self.in_features)
        if config.task_transform == "full":
            self.mtllora_lambda = self.adapter_parameter(t, r, r)
        else:
            self.mtllora_lambda = self.adapter_parameter(t, r)
        self.mtllora_B = self.adapter_parameter(n, self.out_features, r)
        self.mtllora_mix = self.adapter_parameter(t, n)

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.mtllora_A, a=math.sqrt(5))
        with torch.no_grad():
            if self.config.task_transform == "full":
                self.mtllora_lambda.copy_(torch.eye(self.config.r).expand_as(self.mtllora_lambda))
            else:
                self.mtllora_lambda.fill_(1.0)
        nn.init.zeros_(self.mtllora_B)
        nn.init.kaiming_uniform_(self.mtllora_mix, a=math.sqrt(5))

    def mixture_weights(self) -> torch.Tensor:
        """p: (T, N) = softmax(w_t / tau) for every task."""
        return torch.softmax(self.mtllora_mix / self.config.temperature, dim=-1)

    def task_transforms(self) -> torch.Tensor:
        """Lambda: (T, r, r), whichever way it is stored."""
        lam = self.mtllora_lambda
        return lam if self.config.task_transform == "full" else torch.diag_embed(lam)

    def task_matrices(self, tasks: torch.Tensor | None = None) -> torch.Tensor:
        """M_t = (sum_i p_ti B_i) Lambda_t for ``tasks`` (LongTensor (n,)), default every task: (n, d_out, r)."""
        mix, lam = self.mtllora_mix, self.mtllora_lambda
        if tasks is not None:
            mix, lam = mix[tasks], lam[tasks]
        weights = torch.softmax(mix / self.config.temperature, dim=-1)  # (n, N)
        transforms = lam if self.config.task_transform == "full" else torch.diag_embed(lam)
        return torch.einsum("tn,nor->tor", weights, self.mtllora_B) @ transforms

    def row_task_matrices(self, task_ids: torch.Tensor) -> torch.Tensor:
        """M_t for each example's task: (batch, d_out, r), built for the batch's distinct tasks only.

        Cost N d_out r per distinct task, whatever the number T of configured tasks (torch.unique
        waits for the task ids on a GPU).
        """
        distinct, rows = torch.unique(task_ids, return_inverse=True)
        return self.task_matrices(distinct)[rows]

    def _record(self, task_ids: torch.Tensor, x: torch.Tensor) -> None:
        if self.state.record_routing:
            weights = per_example(torch.softmax(self.mtllora_mix[task_ids] / self.config.temperature, -1), x[..., :1])
            self.record_routing(weights.expand(*x.shape[:-1], weights.shape[-1]))

    def delta(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """(alpha/r) M_t A x; x: (batch, ..., d_in) -> (batch, ..., d_out).

        Semantics: ``scaling * sum_i p[t, i] * (Lambda_t (A x)) @ B_i.T`` per example (see
        :meth:`delta_reference`). The task matrices M_t = (sum_i p_ti B_i) Lambda_t (d_out, r) are
        formed for the batch's distinct tasks only (cost N d_out r each, independent of T and of
        the sequence length), each example picks its own, and one batched matmul applies it: the
        per-token cost is LoRA's. Inside ``generate`` (task ids fixed per row for the whole call)
        they are formed once per call.
        """
        task_ids = require_task_ids(task_ids, self.config.method)
        self._record(task_ids, x)
        h = x @ self.mtllora_A.T  # (batch, ..., r)
        matrices = self.constant("row_task_matrices", lambda: self.row_task_matrices(task_ids))  # (batch, d_out, r)
        flat = h.reshape(h.shape[0], -1, h.shape[-1])  # (batch, tokens, r)
        out = torch.bmm(flat, matrices.transpose(1, 2))  # (batch, tokens, d_out)
        return out.reshape(*h.shape[:-1], self.out_features) * self.config.scaling

    def delta_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """Plain path for testing: per example, Lambda_t A x, every B_i's output, weighted sum."""
        task_ids = require_task_ids(task_ids, self.config.method)
        self._record(task_ids, x)
        outputs = []
        for example, t in zip(x, task_ids.tolist()):
            z = (example @ self.mtllora_A.T) @ self.task_transforms()[t].T  # (..., r)
            heads = torch.stack([z @ b.T for b in self.mtllora_B], dim=-2)  # (..., N, d_out)
            outputs.append((self.mixture_weights()[t].unsqueeze(-1) * heads).sum(-2))
        return torch.stack(outputs) * self.config.scaling

    def delta_weight(self, task_id: int | None = None) -> torch.Tensor:
        """(alpha/r) (sum_i p_ti B_i) Lambda_t A for one task t: (d_out, d_in)."""
        b, a, scale = self.lora_factors(task_id)
        return b @ a * scale

    def lora_factors(self, task_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(M_t, A, alpha / r) for one task t: M_t = (sum_i p_ti B_i) Lambda_t (d_out, r) after the shared A."""
        if task_id is None or not 0 <= task_id < self.num_tasks:
            raise NotMergeableError(
                f"MTL-LoRA's update depends on the task: give a task id in [0, {self.num_tasks}) "
                f"(samora.merge_for_task(model, task)), got {task_id!r}"
            )
        return self.task_matrices()[task_id], self.mtllora_A, self.config.scaling
