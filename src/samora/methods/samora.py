"""SAMoRA: Semantic-Aware Mixture of LoRA Experts (ACL 2026 Findings).

```
                      keys k_1..k_N ──► cos / tau ──► softmax ──► g_1..g_N (per token)
                                          ▲                          │
  x ──► dropout ──► A (r x d_in) ──► h ───┘                          ▼
                                     └──► S h ──► sum_i g_i B_i (S h) ──► * g_task ──► + W x
                                                                            ▲
                     task id t ──► e_t ──► sigmoid(w_gate . e_t + b_gate) ──┘
```

Equation numbers refer to the SAMoRA paper (arXiv 2604.19048).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from samora.config import MethodCard, MixtureConfig, setting, task_embedding_size, validate_fields
from samora.methods.base import AdapterLayer, mix_experts, per_example, reduce_aux_losses, stack_experts
from samora.methods.registry import register
from samora.methods.singular_values import top_singular_values

NORM_EPS = 1e-12  # F.normalize's default: x / max(|x|, eps)


# The authors' released code, where it differs from the paper (or where the paper is silent).
RELEASED = {
    "orth_form": "mse",
    "match_normalize": True,
    "aux_reduction": "sum",
    "gate_bias": False,
    "gate_init": "unit",
    "scale_init": "ones",
}
PAPER = {
    "orth_form": "frobenius",
    "match_normalize": False,
    "aux_reduction": "mean",
    "gate_bias": True,
    "gate_init": "fan_in",
    "scale_init": "svd",
}
VARIANTS = {"paper": PAPER, "released": RELEASED}


@dataclass
class SAMoRAConfig(MixtureConfig):
    """SAMoRA; defaults are the paper's best settings.

    Attributes:
        temperature: router temperature tau in eq. (4). 0.8 is best in the paper; 0.4 collapses onto
            few experts, 1.0 routes too uniformly.
        lambda_orth: weight of L_orth, eq. (9). 1e-3 in the paper; 1e-2 hurts badly.
        lambda_match: weight of L_match, eq. (11) (the paper's lambda_KL). 1e-2 in the paper.
        router: ``"semantic"``: cosine between the latent h = A x and learnable expert keys, eq. (4);
            ``"mlp"``: the paper's "w/o Router" ablation (App. C), "a standard MLP-based gating network"
            on x, softmax(R_2 relu(R_1 x)) with ``router_hidden`` hidden units; ``"linear"``: softmax of
            a linear map R x, the smallest gate on x (not what the paper ran).
        router_hidden: hidden width h of the MLP router (ignored by the others). The network is the one
            HydraLoRA's ``router="mlp"`` uses here (two bias-free layers, ReLU, both kaiming-uniform):
            the paper names its w/o-Router gate only as a standard MLP like those of the MoE-LoRA
            methods it compares with, so the ablation and that baseline share one gate. 32 units cost
            h (d_in + N) parameters per module (18.5 k on SmolLM2's 576-wide layers, against the
            semantic router's N r = 24), the increase in trainable parameters the paper reports.
        scaling: the diagonal scale S (eq. 5) and the task gate (eq. 6). False gives the paper's
            "w/o Scaling" ablation: S = 1 and g_task = 1, fixed (a plain asymmetric MoE-LoRA).
        task_dim: size d_g of the task embedding e_t, eq. (6). Compact is best (the paper's d_g = 64
            drops sharply); 8 as in the released code.
        variant: ``"paper"`` (default) or ``"released"``: the defaults of the six switches below, the
            paper's equations or what the authors' released code ran. With ``"released"`` the forward
            and both losses equal that code's on the same weights. A switch given explicitly wins.
            Neither scales the update by alpha / r: eq. (7) has no such factor, nor has that code.

    The switches (``None``: take the variant's value; one line each, paper / released code):
        orth_form: L_orth, eq. (9): paper ``"frobenius"`` ||A A^T - I||_F^2 + sum_i ||B_i^T B_i - I||_F^2;
            code ``"mse"``: each squared error divided by r^2, the B_i term averaged over experts.
        match_normalize: L_match, eq. (11): paper ``False`` softmax(b_i), softmax(k_i); code ``True``
            L2-normalises b_i and k_i before the softmax.
        aux_reduction: across modules: paper silent, ours ``"mean"`` (lambda means the same on 2 or 80
            layers); code ``"sum"`` (its lambdas were tuned so, but collected inside reentrant checkpointed layers
            they got no gradient).
        gate_bias: eq. (6): paper ``True`` sigmoid(w_gate . e_t + b_gate); code ``False``, no b_gate.
        gate_init: w_gate: paper silent, ours ``"fan_in"`` U(+-1/sqrt d_g); code ``"unit"`` U(+-1)
            (kaiming-uniform on a (d_g, 1) weight, whose fan-in is 1).
        scale_init: S, eq. (5): paper ``"svd"`` top-r singular values of the frozen W (see
            :func:`top_singular_values`); code ``"ones"``.
    """

    method = "samora"
    uses_task = True
    merge_kind = "token"
    card = MethodCard(
        title="SAMoRA (ACL 2026 Findings)",
        equation="g_task(t) sum_i softmax_i(cos(A x, k_i) / tau) B_i S A x",
        router="latent h = A x vs expert keys k_i (per token); task embedding e_t for the gate",
        init="A kaiming-uniform, B_i = 0, keys U(+-1/sqrt r), S = top-r singular values of W, e_t ~ N(0, 1)",
        parameters="r d_in + N r d_out + N r + r + T d_g + d_g + 1 (no + 1 with variant='released'; router='mlp': "
        "h (d_in + N) for the N r keys)",
    )
    temperature: float = setting(0.8, gt=0)
    lambda_orth: float = setting(1e-3, ge=0)
    lambda_match: float = setting(1e-2, ge=0)
    router: str = setting("semantic", choices=("semantic", "mlp", "linear"))
    router_hidden: int = setting(32, ge=1, meaning="hidden width of the MLP router")
    scaling: bool = True
    task_dim: int = task_embedding_size(8)
    variant: str = setting("paper", choices=tuple(VARIANTS))
    # None: the variant's value (filled in by __post_init__), so after construction never None
    orth_form: str | None = setting(None, choices=("frobenius", "mse"))
    match_normalize: bool | None = None
    aux_reduction: str | None = setting(None, choices=("mean", "sum"))
    gate_bias: bool | None = None
    gate_init: str | None = setting(None, choices=("fan_in", "unit"))
    scale_init: str | None = setting(None, choices=("svd", "ones"))

    def __post_init__(self) -> None:
        validate_fields(self, ["variant"])  # before it picks the defaults below
        for name, value in VARIANTS[self.variant].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        super().__post_init__()


@register(SAMoRAConfig)
class SAMoRALayer(AdapterLayer):
    """``y = W x + g_task * sum_i g_i B_i (S A x)``, eq. (7).

    Parameters (N experts, rank r, T tasks, task dim d_g):
        samora_A: (r, d_in) shared down-projection, eq. (3); kaiming-uniform.
        samora_B: (N, d_out, r) semantic experts B_i, eq. (2); zero, so the layer starts as W.
        samora_keys: (N, r) expert keys k_i, eq. (4); U(-1/sqrt r, 1/sqrt r).
        samora_router: (N, d_in) linear router R with ``router="linear"``; (N, h) output layer R_2 with
            ``router="mlp"``; kaiming-uniform.
        samora_router_hidden: (h, d_in) first layer R_1 of the MLP router, only with ``router="mlp"``;
            kaiming-uniform.
        samora_S: (r,) diagonal scale s, eq. (5); only with ``scaling``.
        samora_task_embedding: (T, d_g) e_t, N(0, 1); samora_gate_weight: (d_g,) w_gate,
            U(-1/sqrt d_g, 1/sqrt d_g) (``gate_init="unit"``: U(-1, 1)); samora_gate_bias: (1,)
            b_gate, zero, only with ``gate_bias``. Only with ``scaling``.
    """

    prefix = "samora_"

    def __init__(self, base_layer, config: SAMoRAConfig, state, **kwargs) -> None:
        super().__init__(base_layer, config, state, **kwargs)
        r, n = config.r, config.num_experts
        self.samora_A = self.adapter_parameter(r, self.in_features)
        self.samora_B = self.adapter_parameter(n, self.out_features, r)
        if config.router == "semantic":
            self.samora_keys = self.adapter_parameter(n, r)
        elif config.router == "mlp":
            self.samora_router_hidden = self.adapter_parameter(config.router_hidden, self.in_features)
            self.samora_router = self.adapter_parameter(n, config.router_hidden)
        else:
            self.samora_router = self.adapter_parameter(n, self.in_features)
        if config.scaling:
            self.samora_S = self.adapter_parameter(r)
            self.samora_task_embedding = self.adapter_parameter(self.num_tasks, config.task_dim)
            self.samora_gate_weight = self.adapter_parameter(config.task_dim)
            if config.gate_bias:
                self.samora_gate_bias = self.adapter_parameter(1)

    def reset_parameters(self) -> None:
        config = self.config
        nn.init.kaiming_uniform_(self.samora_A, a=math.sqrt(5))
        nn.init.zeros_(self.samora_B)
        if config.router == "semantic":
            nn.init.uniform_(self.samora_keys, -1 / math.sqrt(config.r), 1 / math.sqrt(config.r))
        else:
            nn.init.kaiming_uniform_(self.samora_router, a=math.sqrt(5))
        if config.router == "mlp":
            nn.init.kaiming_uniform_(self.samora_router_hidden, a=math.sqrt(5))
        if config.scaling:
            with torch.no_grad():
                if config.scale_init == "svd":
                    self.samora_S.copy_(top_singular_values(self.base_weight(), config.r))
                else:
                    self.samora_S.fill_(1.0)
            nn.init.normal_(self.samora_task_embedding)
            bound = 1 / math.sqrt(config.task_dim) if config.gate_init == "fan_in" else 1.0
            nn.init.uniform_(self.samora_gate_weight, -bound, bound)
            if config.gate_bias:
                nn.init.zeros_(self.samora_gate_bias)

    # -- routing ---------------------------------------------------------------------------------
    def router_weights(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """g: (batch, ..., N). Semantic: softmax_i(cos(h, k_i) / tau), eq. (4); MLP: softmax(R_2 relu(R_1 x));
        linear: softmax(R x)."""
        if self.config.router == "semantic":
            logits = F.normalize(h, dim=-1) @ F.normalize(self.samora_keys, dim=-1).T
            return torch.softmax(logits / self.config.temperature, dim=-1)
        if self.config.router == "mlp":
            x = torch.relu(x @ self.samora_router_hidden.T)  # (batch, ..., h)
        return torch.softmax(x @ self.samora_router.T, dim=-1)

    def task_gate(self, task_ids: torch.Tensor | None) -> torch.Tensor | None:
        """g_task = sigmoid(w_gate . e_t + b_gate), eq. (6) (b_gate = 0 without ``gate_bias``): (batch,),
        or a scalar for no task ids.

        An unseen task (id -1, or no task ids at all) uses the mean gate logit over the known tasks.
        Returns None when scaling is off (g_task = 1).
        """
        if not self.config.scaling:
            return None
        gates = self.task_gate_table()
        return gates[-1] if task_ids is None else gates[task_ids]

    def task_gate_table(self) -> torch.Tensor:
        """(T + 1,): g_task of each known task, then of an unseen task (the last row: id -1 picks it).

        An unseen task's gate logit is the mean logit over the known tasks; the logit is affine in
        e_t, so that is the logit of the mean embedding.
        """
        embeddings = self.samora_task_embedding  # (T, d_g)
        unseen = embeddings.mean(0, keepdim=True) if self.num_tasks else embeddings.new_zeros(1, embeddings.shape[1])
        logits = torch.cat([embeddings, unseen]) @ self.samora_gate_weight  # (T + 1,)
        return torch.sigmoid(logits + self.samora_gate_bias if self.config.gate_bias else logits)

    def _latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x @ self.samora_A.T  # (batch, ..., r), eq. (3)
        gates = self.router_weights(x, h)  # (batch, ..., N)
        self.record_routing(gates)
        scaled = h * self.samora_S if self.config.scaling else h  # S A x, eq. (5)
        return gates, scaled

    def _apply_task_gate(self, mixed: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        gate = self.task_gate(task_ids)
        if gate is None:
            return mixed
        return mixed * (gate if gate.dim() == 0 else per_example(gate, mixed))

    def delta(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """g_task * sum_i g_i B_i (S A x), eq. (7); x: (batch, ..., d_in) -> (batch, ..., d_out).

        Semantics: :meth:`delta_reference`, ``g_task * sum_i g[..., i, None] * (z @ B_i.T)`` with
        z = S A x. Computed in the r-dim latent space: g_task (one scalar per example) and S fold into
        one scale of h = A x, and the gated latents u = (g_i g_task S h)_i, N r per token, meet the
        stacked experts [B_1 ... B_N] (d_out, N r) in one matmul. No (batch, seq, N, d_out) tensor is
        built, and that matmul is the only d_out-sized work besides LoRA's: N r d_out per token.
        """
        h = F.linear(x, self.samora_A)  # (batch, ..., r), eq. (3)
        gates = self._fast_router_weights(x, h)
        self.record_routing(gates)
        z = h * self._latent_scale(task_ids, h) if self.config.scaling else h  # g_task S A x
        return mix_experts(gates, z, self.constant("stacked_B", lambda: stack_experts(self.samora_B)))

    def _fast_router_weights(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """:meth:`router_weights` in fewer operations: cos(h, k_i) / tau = (h . k_i / (|k_i| tau)) / |h|."""
        if self.config.router == "mlp":
            return torch.softmax(
                F.linear(torch.relu(F.linear(x, self.samora_router_hidden)), self.samora_router), dim=-1
            )
        if self.config.router == "linear":
            return torch.softmax(F.linear(x, self.samora_router), dim=-1)
        keys = self.constant("scaled_keys", self._scaled_keys)
        # linalg.vector_norm, not Tensor.norm: per generated token, Tensor.norm's Python wrapper costs more
        # than the kernel (3.6 us against 1.9 us a call on a (1, 1, r) latent, one CPU thread)
        norms = torch.linalg.vector_norm(h, dim=-1, keepdim=True)
        return torch.softmax(F.linear(h, keys) / norms.clamp_min(NORM_EPS), dim=-1)

    def _scaled_keys(self) -> torch.Tensor:
        """k_i / (|k_i| tau): (N, r)."""
        keys = self.samora_keys
        norms = torch.linalg.vector_norm(keys, dim=-1, keepdim=True)
        return keys / (norms.clamp_min(NORM_EPS) * self.config.temperature)

    def _latent_scale(self, task_ids: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
        """S g_task: (r,) when one gate serves the whole batch, else (batch, 1, ..., r) against h."""
        scales = self.constant("task_scales", lambda: self.task_gate_table()[:, None] * self.samora_S)  # (T + 1, r)
        return scales[-1] if task_ids is None else per_example(scales[task_ids], h)

    def delta_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """Plain path for testing: every expert's full output, then the weighted sum."""
        gates, z = self._latent(x)
        outputs = torch.stack([z @ b.T for b in self.samora_B], dim=-2)  # (batch, ..., N, d_out)
        return self._apply_task_gate((gates.unsqueeze(-1) * outputs).sum(-2), task_ids)

    def expert_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """e_i(x) = B_i (S A x), eqs. (2), (3), (5), before the router weights and the task gate:
        x (..., d_in) -> (..., N, d_out). What expert i would add to x if it got the whole weight."""
        z = x.to(self.adapter_dtype) @ self.samora_A.T  # (..., r), eq. (3)
        if self.config.scaling:
            z = z * self.samora_S  # S A x, eq. (5)
        return torch.einsum("...r,nor->...no", z, self.samora_B)

    # -- regularisers ----------------------------------------------------------------------------
    def aux_losses(self) -> dict[str, torch.Tensor]:
        """Unweighted L_orth, eq. (9), and L_match, eq. (11), of this module.

        Paper form (``orth_form="frobenius"``, ``match_normalize=False``), A: (r, d_in), B: (N, d_out, r):
            L_orth = ||A A^T - I_r||_F^2 + sum_i ||B_i^T B_i - I_r||_F^2
            L_match = (1/N) sum_i KL(softmax(b_i) || softmax(k_i)), b_i = mean over the d_out rows of B_i
            (eq. 10).
        Released code's form (``orth_form="mse"``, ``match_normalize=True``):
            L_orth = ||A A^T - I_r||_F^2 / r^2 + (1/N) sum_i ||B_i^T B_i - I_r||_F^2 / r^2
            L_match = (1/N) sum_i KL(softmax(b_i / |b_i|) || softmax(k_i / |k_i|)).
        L_match needs the semantic router's keys; with ``router="linear"`` or ``"mlp"`` it is absent.
        """
        config, losses = self.config, {}
        eye = torch.eye(config.r, device=self.samora_A.device, dtype=self.samora_A.dtype)
        if config.lambda_orth:
            error_a = (self.samora_A @ self.samora_A.T - eye).square()  # (r, r)
            error_b = (self.samora_B.transpose(1, 2) @ self.samora_B - eye).square()  # (N, r, r)
            if config.orth_form == "mse":
                losses["orth"] = error_a.mean() + error_b.mean()
            else:
                losses["orth"] = error_a.sum() + error_b.sum()
        if config.lambda_match and config.router == "semantic":
            centroids, keys = self.samora_B.mean(dim=1), self.samora_keys  # b_i, k_i: (N, r)
            if config.match_normalize:
                centroids, keys = F.normalize(centroids, dim=-1, eps=NORM_EPS), F.normalize(keys, dim=-1, eps=NORM_EPS)
            log_p, log_q = torch.log_softmax(centroids, dim=-1), torch.log_softmax(keys, dim=-1)
            losses["match"] = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1).mean()
        return losses

    @classmethod
    def combine_aux_losses(cls, layers: list[AdapterLayer], config: SAMoRAConfig) -> dict[str, torch.Tensor]:
        """Weighted totals: lambda_orth * reduce(L_orth) and lambda_match * reduce(L_match), eq. (8)."""
        weights = {"orth": config.lambda_orth, "match": config.lambda_match}
        return reduce_aux_losses(layers, weights, config.aux_reduction)
