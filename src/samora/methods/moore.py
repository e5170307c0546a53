"""MoORE: Mixture of Orthogonal Rank-one Experts (arXiv 2506.14436).

The frozen weight is split by SVD into m = min(d_out, d_in) orthogonal rank-one experts,
``W = U diag(s) V^T = sum_j s_j u_j v_j^T``; a router re-weights them per token and per task, and a
learned orthogonal map H (a chain of r Householder reflections) turns the right singular vectors:

```
              ┌─── router: P_up (G x) + P_task e_t ───► d ──► w = relu(s + d) ─┐
              │                                                                ▼
  x ──► H ──► z ──► V^T z ──────────────────────────────────────────► w * (V^T z) ──► U ──► + b ──► y
```

The layer replaces W x: ``y = U (w * V^T H x) + b``. At init H = I (the reflections come in
identical pairs) and w = s (the P's are zero), so y = U diag(s) V^T x + b = W x + b up to the SVD's
and the paired reflections' round-off (float32, SmolLM2-135M with q/k/v/o adapted: logits within
1.5e-4 of the base's, which reach 30).

The same function computed as ``W (H x) + b + U ((w - s) * V^T H x)`` would leave only the
reflections' round-off at init (7e-5 on the same logits) but costs 1.4-1.6x the layer's CPU time
(one more d_out x d_in matmul; benchmarks/moore_paths.py), so the direct form is kept, as in the
released code.

Cost. Per token, in multiply-adds, the layer's forward is
``m (d_in + d_out) + E (d_in + m) + r (d_in + m)`` (x V, U (.), G x, P_up (.), x Y^T, (.) C) where
a LoRA layer's is ``d_in d_out + r (d_in + d_out)``; backward adds the input gradients of all of
them and the weight gradients of G, P_up and the reflections. That is arithmetic of the method,
not overhead: it replaces W x by two m-wide products and routes over all m directions. For SmolLM2-
135M (d = 576, k/v d_out = 192, 30 layers, q/k/v/o, E = 128, r = 8, batch 8 x 128) torch's FLOP
counter gives 738.7 GFLOP per training step against PEFT LoRA's 555.3 (+2.97 M multiply-adds per
token and layer): a floor of 1.33x PEFT LoRA's step, and 1.27x its no-grad forward (353.3 against
277.3 GFLOP), the floor of the generation ratio. ``benchmarks/step_flops.py`` counts it with
torch's FLOP counter. No per-step or per-token recomputation is left: the Householder factors,
the fused reflection term C = T Y V (r x m) and the row scales s + P_task e_t are formed once per
forward (once per ``generate`` call, where H V and G^T are also stacked into one matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from samora.config import MethodCard, MixtureConfig, task_embedding_size
from samora.methods.base import AdapterLayer, per_example
from samora.methods.registry import register
from samora.routing import UNSEEN_TASK


@dataclass
class MoOREConfig(MixtureConfig):
    """MoORE; defaults follow the released scripts (128 router experts, d_te = 64, 8 reflections).

    Attributes:
        r: number of Householder reflections in H (8 in the released scripts). They start in identical
            pairs so that H = I, hence r must be even. ``H x - x`` has rank at most r.
        num_experts: E, the width of the router's first layer G (E x d_in); its output is mapped to
            all m singular directions by P_up (m x E). 128 in the released scripts.
        task_dim: size d_te of the task embedding e_t (64 in the released scripts).
        dropout: dropout on the router's input only (the rotated main path never sees it). The
            released code has none, hence 0.
    """

    method = "moore"
    uses_task = True
    merge_kind = "token"
    card = MethodCard(
        title="MoORE (Yuan et al., 2025)",
        equation="replaces W x by U (relu(s + P_up G x + P_task e_t) * V^T H x), W = U diag(s) V^T",
        router="token x (G, then P_up onto all m singular directions) plus task embedding e_t",
        init="Householder vectors of H in identical pairs (H = I), P_up = P_task = 0, G kaiming-uniform, "
        "e_t ~ N(0, 1)",
        parameters="d_in E + E m + T d_te + d_te m + r d_in, m = min(d_in, d_out)",
    )
    num_experts: int = 128
    task_dim: int = task_embedding_size(64)
    dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.r % 2:
            raise ValueError(
                f"r (the number of Householder reflections) must be even so that they pair up "
                f"into H = I at init, got {self.r}"
            )
        if not self.tasks:
            raise ValueError("MoORE learns one embedding per task: give tasks=[...] (the task names in id order)")


def householder_product(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Compact WY form of ``H_1 H_2 ... H_r`` with ``H_i = I - 2 y_i y_i^T``, y_i = vectors[i] / norm.

    Returns ``(Y, T)``: Y (r, d) the unit vectors, T (r, r) upper triangular with
    ``T^{-1} = diag(1/2) + strict_upper(Y Y^T)``, so that ``H_1 ... H_r = I - Y^T T Y``.
    """
    unit = F.normalize(vectors, dim=-1)
    r = unit.shape[0]
    eye = torch.eye(r, device=unit.device, dtype=unit.dtype)
    t_inverse = torch.triu(unit @ unit.T, diagonal=1) + 0.5 * eye
    return unit, torch.linalg.solve_triangular(t_inverse, eye, upper=True)


@register(MoOREConfig)
class MoORELayer(AdapterLayer):
    """``y = U (relu(s + P_up G x + P_task e_t) * V^T H x) + b``, replacing ``W x + b``.

    Trainable (m singular directions, E router experts, T tasks, r reflections):
        moore_householder: (r, d_in) reflection vectors; kaiming-uniform, in identical pairs (H = I).
        moore_router: (E, d_in) G, kaiming-uniform; moore_router_up: (m, E) P_up, zero.
        moore_task_embedding: (T, d_te) e_t, N(0, 1); moore_task_proj: (m, d_te) P_task, zero.
    Frozen buffers, recomputed from W on construction and not saved: moore_U (d_out, m),
    moore_S (m,), moore_V (d_in, m), in the adapter dtype (the SVD runs in float32, or float64 for
    a float64 adapter): m (d_in + d_out) numbers per module, twice a square W's size, the price of
    routing over all singular directions.

    An unseen task (id -1) or a call without task ids uses the mean task embedding.
    """

    prefix = "moore_"

    def __init__(self, base_layer, config: MoOREConfig, state, **kwargs) -> None:
        super().__init__(base_layer, config, state, **kwargs)
        svd_dtype = torch.float64 if self.adapter_dtype == torch.float64 else torch.float32
        u, s, vh = torch.linalg.svd(self.base_weight().detach().to(svd_dtype), full_matrices=False)
        m = s.shape[0]
        self.register_buffer("moore_U", u.to(self.adapter_dtype), persistent=False)
        self.register_buffer("moore_S", s.to(self.adapter_dtype), persistent=False)
        self.register_buffer("moore_V", vh.T.to(self.adapter_dtype), persistent=False)
        self.moore_householder = self.adapter_parameter(config.r, self.in_features)
        self.moore_router = self.adapter_parameter(config.num_experts, self.in_features)
        self.moore_router_up = self.adapter_parameter(m, config.num_experts)
        self.moore_task_embedding = self.adapter_parameter(self.num_tasks, config.task_dim)
        self.moore_task_proj = self.adapter_parameter(m, config.task_dim)

    def reset_parameters(self) -> None:
        half = torch.empty(self.config.r // 2, self.in_features, device=self.device, dtype=self.adapter_dtype)
        nn.init.kaiming_uniform_(half, a=math.sqrt(5))
        with torch.no_grad():
            self.moore_householder.copy_(half.repeat_interleave(2, dim=0))
        nn.init.kaiming_uniform_(self.moore_router, a=math.sqrt(5))
        nn.init.zeros_(self.moore_router_up)
        nn.init.normal_(self.moore_task_embedding)
        nn.init.zeros_(self.moore_task_proj)

    def output(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, ..., d_in) -> U (relu(s + d) * V^T H x) + b: (batch, ..., d_out).

        The output hook instead of the base class's ``base(x) + delta(x)``: MoORE replaces the frozen
        W x itself. The router sees dropout(x); the rotated main path does not. Semantics:
        :meth:`output_reference`.

        Per token the matmuls are those of the equation and no more: x V and x Y^T (d_in (m + r)),
        (x Y^T) C with C = T Y V (r m), G x and P_up (G x) (E (d_in + m)), U (.) (m d_out). The
        per-example row scale s + P_task e_t is one (batch, m) table, added once. Inside
        ``generate`` the rotation is folded into V once per call (V_H = H V) and stacked with G^T,
        so each token takes one (d_in x (m + E)) matmul for both.
        """
        inputs = x if x.dtype == self.adapter_dtype else x.to(self.adapter_dtype)
        scales = per_example(self.row_scales(task_ids), inputs[..., :1])  # (batch, .., m)
        if self.state.constants is not None and not torch.is_grad_enabled() and not self.dropout.training:
            stacked = self.constant("rotated_V_and_router", self._rotated_V_and_router)  # (d_in, m + E)
            main, routed = (inputs @ stacked).split([self.moore_S.shape[0], self.config.num_experts], dim=-1)
        else:
            main, routed = self.project(inputs), self.dropout(inputs) @ self.moore_router.T
        weights = torch.relu(routed @ self.moore_router_up.T + scales)  # (batch, ..., m)
        self.record_routing(weights)
        out = (main * weights) @ self.moore_U.T
        return self._add_bias(out).to(x.dtype)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """V^T H x as rows: ``x V - (x Y^T) C`` with ``C = T (Y V)``: (..., d_in) -> (..., m).

        Equal to ``rotate(x) @ V`` (x H V with H = I - Y^T T Y), without the d_in-wide rotated copy
        of x: the reflections act after V, on r x m numbers per step.
        """
        unit, t = self.constant("householder", lambda: householder_product(self.moore_householder))
        flat = x.reshape(-1, x.shape[-1])
        projected = torch.addmm(flat @ self.moore_V, flat @ unit.T, t @ (unit @ self.moore_V), alpha=-1)
        return projected.reshape(*x.shape[:-1], projected.shape[-1])

    def _rotated_V_and_router(self) -> torch.Tensor:
        """[H V | G^T]: (d_in, m + E), for inference, where neither changes within a call."""
        unit, t = householder_product(self.moore_householder)
        rotated_v = self.moore_V - unit.T @ (t @ (unit @ self.moore_V))
        return torch.cat([rotated_v, self.moore_router.T], dim=1)

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """H x as rows: ``x H_1 ... H_r = x - ((x Y^T) T) Y`` (compact WY form): (..., d_in)."""
        unit, t = self.constant("householder", lambda: householder_product(self.moore_householder))
        return x - ((x @ unit.T) @ t) @ unit

    def router_shift(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """d = P_up (G x) + P_task e_t: (batch, ..., m); the routing weights are relu(s + d)."""
        token = (x @ self.moore_router.T) @ self.moore_router_up.T
        return token + per_example(self.task_shift(task_ids), token)

    def row_scales(self, task_ids: torch.Tensor | None) -> torch.Tensor:
        """s + P_task e_t: (batch, m), or (1, m) for the mean embedding when no task ids are given.

        Inside ``generate`` (task ids fixed per row for the whole call) computed once per call.
        """
        return self.constant("row_scales", lambda: self.moore_S + self.task_shift(task_ids))

    def task_shift(self, task_ids: torch.Tensor | None) -> torch.Tensor:
        """P_task e_t: (batch, m), or (1, m) for the mean embedding when no task ids are given."""
        if task_ids is None:
            return self.moore_task_embedding.mean(0, keepdim=True) @ self.moore_task_proj.T
        return self._row_task_shifts(task_ids)

    def _row_task_shifts(self, task_ids: torch.Tensor) -> torch.Tensor:
        """(batch, m): P_task e_t computed for the batch's distinct tasks only, the mean embedding for -1.

        Cost d_te m per distinct task, whatever the number T of configured tasks.
        """
        distinct, rows = torch.unique(task_ids, return_inverse=True)  # sorted: an unseen -1 comes first
        embeddings = self.moore_task_embedding[distinct.clamp(min=0)]  # (n, d_te)
        if bool(distinct[0] == UNSEEN_TASK):
            embeddings = torch.cat([self.moore_task_embedding.mean(0, keepdim=True), embeddings[1:]])
        return (embeddings @ self.moore_task_proj.T)[rows]

    def output_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """Plain path for testing: reflections one at a time, then every rank-one expert's output."""
        rotated = x.to(self.adapter_dtype)
        for vector in F.normalize(self.moore_householder, dim=-1):
            rotated = rotated - 2 * (rotated @ vector).unsqueeze(-1) * vector
        weights = torch.relu(self.moore_S + self.router_shift(x.to(self.adapter_dtype), task_ids))  # (..., m)
        experts = (rotated @ self.moore_V).unsqueeze(-1) * self.moore_U.T  # (..., m, d_out): (v_j.z) u_j
        return self._add_bias((weights.unsqueeze(-1) * experts).sum(-2))

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        bias = getattr(self.base_layer, "bias", None)
        return out if bias is None else out + bias

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, directions={self.moore_S.shape[0]}, router_experts={self.config.num_experts}"
