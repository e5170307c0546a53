"""The base adapter layer: a frozen linear plus a method-specific update.

```
            ┌──────────── frozen base layer W ───────────┐
  x ──┬────►│ W x (+ b)                                  ├──► + ──► y
      │     └────────────────────────────────────────────┘    ▲
      └──► dropout ──► delta(x, task_ids)  (method-specific) ─┘
```

Every method implements :meth:`AdapterLayer.delta` and its plain twin
:meth:`AdapterLayer.delta_reference`, or, when it replaces W x rather than adding to it (MoORE),
:meth:`AdapterLayer.output` and :meth:`AdapterLayer.output_reference`. The adapter's parameters live
in float32 (or whatever ``adapter_dtype`` says) whatever the base dtype, so a bf16 base keeps
full-precision adapter weights, as PEFT does; the input is cast to the adapter dtype and the update
cast back to the output dtype. Parameter names carry the method prefix (``samora_A``, ``lora_B``) so
a state dict explains itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from samora.config import AdapterConfig
from samora.methods.quantized import dequantized_weight, keep_trainable_layout, quantization_of
from samora.routing import RoutingState

T = TypeVar("T")


class NotMergeableError(TypeError):
    """Raised when an adapter cannot be folded into fixed weights."""


def not_exportable(config: AdapterConfig) -> NotMergeableError:
    """The error for a method whose update is not one plain LoRA, with the reason."""
    reason = (
        "it routes per token: its mixture weights depend on each input, so no fixed weight, "
        "low-rank or not, reproduces it"
        if config.merge_kind == "token"
        else "no exact low-rank factorisation of its update is known to samora"
    )
    return NotMergeableError(
        f"method '{config.method}' cannot be exported as a PEFT LoRA: {reason}; "
        "serve it with samora (samora.load_adapter)"
    )


def linear_shape(base_layer: nn.Module) -> tuple[int, int, bool]:
    """Return ``(in_features, out_features, fan_in_fan_out)`` of a supported linear layer.

    Supported: ``torch.nn.Linear`` (weight (out, in)), bitsandbytes' ``Linear4bit`` / ``Linear8bitLt``
    (subclasses of it, weight stored packed; see :mod:`samora.methods.quantized`) and GPT-2 style
    ``Conv1D`` (weight (in, out)).
    """
    if isinstance(base_layer, nn.Linear):
        return base_layer.in_features, base_layer.out_features, False
    if type(base_layer).__name__ == "Conv1D" and hasattr(base_layer, "nf"):
        return base_layer.weight.shape[0], base_layer.nf, True
    raise TypeError(
        f"cannot adapt a {type(base_layer).__name__}: supported layers are torch.nn.Linear and "
        "transformers' Conv1D; choose target_modules that name linear projections"
    )


class AdapterLayer(nn.Module):
    """Wraps a frozen linear; ``forward(x) = output(x, task_ids) = base(x) + delta(dropout(x), task_ids)``.

    The hooks a method provides (every one has a default here, except :meth:`delta` and
    :meth:`reset_parameters`):

    - :meth:`delta`, the update added to W x (the fast path), and :meth:`delta_reference`, the same
      function computed plainly, for the tests (no default: a method whose ``delta`` is already its
      plain equation says so with ``delta_reference = delta``);
    - :meth:`output` and :meth:`output_reference`: the layer's whole output, ``base(x) + delta``; a
      method that replaces W x (MoORE) overrides these instead of the two above. Every method's
      ``output`` and ``output_reference`` agree (the contract suite checks it);
    - :meth:`aux_losses` and :meth:`combine_aux_losses` (parameter-only regularisers),
      :meth:`delta_weight` (for merging), :meth:`lora_factors` (for export as a PEFT LoRA),
      :meth:`after_optimizer_step` (state updated once per step);
    - for the analysis: :meth:`expert_outputs` (each expert's own output) and :meth:`task_gate`
      (a learned per-task gate); None where the method has none.
    """

    prefix: ClassVar[str] = ""

    def __init__(
        self,
        base_layer: nn.Module,
        config: AdapterConfig,
        state: RoutingState,
        *,
        name: str = "",
        adapter_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.fan_in_fan_out = linear_shape(base_layer)
        self.base_layer = base_layer
        self.name = name
        self.adapter_dtype = adapter_dtype
        self.num_tasks = len(config.tasks)
        # Plain attributes (not registered): shared with the other layers of the model.
        self.__dict__["config"] = config
        self.__dict__["state"] = state
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.disabled = False
        self._regulariser_terms: tuple[int, dict[str, torch.Tensor]] | None = None
        keep_trainable_layout(base_layer)

    @property
    def device(self) -> torch.device:
        return self.base_layer.weight.device

    @property
    def base_quantization(self) -> str | None:
        """``"4-bit"`` / ``"8-bit"`` for a bitsandbytes base layer (QLoRA), else None."""
        return quantization_of(self.base_layer)

    def base_weight(self) -> torch.Tensor:
        """The frozen weight as (out_features, in_features), whatever the layer's storage layout; a
        bitsandbytes base's dequantised (a new tensor in its compute dtype, not the stored weight)."""
        if self.base_quantization is not None:
            return dequantized_weight(self.base_layer)
        weight = self.base_layer.weight
        return weight.T if self.fan_in_fan_out else weight

    def adapter_parameter(self, *shape: int) -> nn.Parameter:
        """A new adapter parameter on the base layer's device in the adapter dtype (values unset)."""
        return nn.Parameter(torch.empty(*shape, device=self.device, dtype=self.adapter_dtype))

    def reset_parameters(self) -> None:
        """Initialise the adapter so that the adapted layer equals the base layer (at least in law)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) -> (..., out_features); the leading dim of x is the batch."""
        if self.disabled:
            return self.base_layer(x)
        if torch.is_grad_enabled() and type(self).aux_losses is not AdapterLayer.aux_losses:
            # only where a loss can train on them: not in evaluation, scoring or generate (no_grad), nor
            # in a reentrant checkpoint's first pass (no_grad: regulariser_terms computes them after)
            self._keep_regulariser_terms()
        task_ids = self.state.task_ids_for(x) if self.config.uses_task else None
        return self.output(x, task_ids)

    def _keep_regulariser_terms(self) -> None:
        """Compute :meth:`aux_losses` now, inside this layer's forward, and keep them for
        :meth:`regulariser_terms`: here FSDP (one unit per decoder layer) and DeepSpeed ZeRO-3 have the
        layer's parameters gathered, and the gradient of the terms reaches them through the same
        all-gather / reduce-scatter as the task loss's. Outside the forward they are this rank's
        shards (DTensors, or empty tensors under ZeRO-3). Once per top-level forward: a gradient
        checkpointing recompute (same ``forward_count``) keeps the first terms."""
        kept = self._regulariser_terms
        if kept is None or kept[0] != self.state.forward_count:
            self._regulariser_terms = (self.state.forward_count, self.aux_losses())

    def regulariser_terms(self) -> dict[str, torch.Tensor]:
        """:meth:`aux_losses` as computed in this layer's forward of the current top-level forward (see
        :meth:`_keep_regulariser_terms`), handed out once. Computed from the parameters now instead when
        none are kept for this forward, or when they were computed without gradients but gradients are
        wanted now (reentrant gradient checkpointing runs the forward under ``no_grad``)."""
        kept, self._regulariser_terms = self._regulariser_terms, None
        usable = kept is not None and kept[0] == self.state.forward_count
        if usable and (not torch.is_grad_enabled() or all(term.requires_grad for term in kept[1].values())):
            return kept[1]
        return self.aux_losses()

    def output(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """The adapted layer's output ``W x (+ b) + delta(dropout(x), task_ids)``: (..., out_features)."""
        result = self.base_layer(x)
        delta = self.delta(self.adapter_input(x), task_ids)
        return result + (delta if delta.dtype == result.dtype else delta.to(result.dtype))

    def output_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """:meth:`output` with :meth:`delta_reference` for :meth:`delta`: the plain path, for testing."""
        result = self.base_layer(x)
        return result + self.delta_reference(self.adapter_input(x), task_ids).to(result.dtype)

    def adapter_input(self, x: torch.Tensor) -> torch.Tensor:
        """x in the adapter dtype, with dropout in training mode: what :meth:`delta` receives.

        The no-op calls (same-dtype casts, dropout in eval mode) are skipped: per generated token
        they add up over every adapted module.
        """
        if x.dtype != self.adapter_dtype:
            x = x.to(self.adapter_dtype)
        return self.dropout(x) if self.dropout.training else x

    def delta(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """The update added to the frozen output. x: (batch, ..., in) -> (batch, ..., out)."""
        raise NotImplementedError(f"{type(self).__name__} must implement delta (or output, if it replaces W x)")

    def delta_reference(self, x: torch.Tensor, task_ids: torch.Tensor | None) -> torch.Tensor:
        """:meth:`delta` computed plainly (every expert's output, loops over tasks), for testing."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement delta_reference, the plain path its delta is tested "
            "against (write delta_reference = delta when delta is already the plain equation)"
        )

    def expert_outputs(self, x: torch.Tensor) -> torch.Tensor | None:
        """Each expert's own output on inputs x (..., in): (..., N, out), before any router weight
        or gate; None for a method without experts to compare (the default)."""
        return None

    def task_gate(self, task_ids: torch.Tensor | None) -> torch.Tensor | None:
        """The learned gate of each example's task, (batch,); None for a method without one (the default)."""
        return None

    def aux_losses(self) -> dict[str, torch.Tensor]:
        """Unweighted regulariser terms of this layer, computed from parameters only."""
        return {}

    @classmethod
    def combine_aux_losses(cls, layers: list[AdapterLayer], config: AdapterConfig) -> dict[str, torch.Tensor]:
        """Weighted regulariser totals over all adapted modules, added to the loss (default: none)."""
        return {}

    def delta_weight(self, task_id: int | None = None) -> torch.Tensor:
        """The update as a dense (out_features, in_features) matrix, for merging."""
        raise NotMergeableError(
            f"{type(self).__name__} routes per token (its mixture weights depend on each input), so it "
            "cannot be folded into fixed weights; keep the adapter unmerged"
        )

    def lora_factors(self, task_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(B, A, scale)``, B (d_out, R) and A (R, d_in), with ``scale * B @ A == delta_weight(task_id)``:
        the update as one plain LoRA, for export to PEFT. The default refuses: only a method whose
        update is exactly one low-rank product (for a fixed task) overrides it."""
        raise not_exportable(self.config)

    @classmethod
    def has_lora_factors(cls) -> bool:
        """Whether this method overrides :meth:`lora_factors` (its adapters export to PEFT)."""
        return cls.lora_factors is not AdapterLayer.lora_factors

    def after_optimizer_step(self) -> None:
        """Update non-gradient state once per optimizer step (default: nothing)."""

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """This layer's own tensors (parameters and persistent buffers) by name, the base layer's left out."""
        return {key: value for key, value in self.state_dict().items() if not key.startswith("base_layer.")}

    def constant(self, what: str, compute: Callable[[], T]) -> T:
        """``compute()``, a value of this layer's parameters alone (no input), e.g. normalised keys.

        Inside ``generate`` the parameters are fixed and every generated token calls every adapted
        layer, so the value is computed once per call and kept in the routing state; elsewhere
        (training, a plain forward) it is computed each time, with its autograd graph.
        """
        constants = self.state.constants
        if constants is None or torch.is_grad_enabled():
            return compute()
        key = (self.name, what)
        value = constants.get(key)
        if value is None:
            value = constants[key] = compute()
        return value

    def record_routing(self, weights: torch.Tensor) -> None:
        """Keep this forward's router weights (batch, ..., experts) when the model asks for them."""
        if self.state.record_routing:
            self.state.routing[self.name] = weights.detach()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, r={self.config.r}"


def per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape per-example values (batch, *rest) to broadcast against ``like`` (batch, ..., *rest)."""
    extra = like.dim() - values.dim()
    return values.reshape(values.shape[0], *([1] * max(extra, 0)), *values.shape[1:])


def require_task_ids(task_ids: torch.Tensor | None, method: str) -> torch.Tensor:
    """The task ids, or a clear error for a task-routed layer called without them.

    The model's forward already refuses a call without task ids for such methods; this guards a
    layer called on its own.
    """
    if task_ids is None:
        raise ValueError(f"method '{method}' routes by task: call the model with task_ids=... (one per example)")
    return task_ids


def reduce_aux_losses(
    layers: list[AdapterLayer], weights: dict[str, float], reduction: str
) -> dict[str, torch.Tensor]:
    """Combine each layer's terms across modules (mean or sum), times their weight; zero weights skip.

    Each layer's terms are those of its last forward (:meth:`AdapterLayer.regulariser_terms`), so that
    they see whole parameters under FSDP and ZeRO-3."""
    per_layer = [layer.regulariser_terms() for layer in layers]
    totals = {}
    for name, weight in weights.items():
        terms = [losses[name] for losses in per_layer if name in losses]
        if weight and terms:
            stacked = torch.stack([t.to(terms[0].device) for t in terms])
            totals[name] = weight * (stacked.mean() if reduction == "mean" else stacked.sum())
    return totals


def stack_experts(experts: torch.Tensor) -> torch.Tensor:
    """[B_1 ... B_N]: experts (N, d_out, r) -> (d_out, N r), the right operand of :func:`mix_experts`."""
    return torch.cat(experts.unbind(0), dim=1)  # cat: half the time of permute + reshape


def mix_experts(gates: torch.Tensor, latent: torch.Tensor, stacked: torch.Tensor) -> torch.Tensor:
    """``sum_i gates[..., i] * (latent @ experts[i].T)`` as one matmul.

    gates: (batch, ..., N); latent: (batch, ..., r); stacked: :func:`stack_experts` of experts
    (N, d_out, r), i.e. (d_out, N r) -> (batch, ..., d_out). The gated latents (g_i h)_i, N r per
    token, meet [B_1 ... B_N] in one matmul: no (batch, ..., N, d_out) tensor is built, and the
    d_out-sized work is N r d_out per token.
    """
    gated = (gates.unsqueeze(-1) * latent.unsqueeze(-2)).flatten(-2)  # (batch, ..., N r)
    return F.linear(gated, stacked)
