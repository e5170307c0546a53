"""Find target linears in any transformers model, swap in adapter layers, freeze the rest.

:func:`get_model` adapts a model in place, attaches an :class:`AdapterHandle` as
``model.samora_adapter``, and binds on that one instance (the class is untouched) a forward and a
generate that take ``task_ids``, and a save_pretrained / push_to_hub that refuse: see
:mod:`samora.bound`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch
from torch import nn

from samora.bound import ATTRIBUTE, bind, unbind
from samora.cache import base_model_identity
from samora.config import AdapterConfig
from samora.methods import AdapterLayer, get_method
from samora.methods.base import linear_shape
from samora.routing import UNSEEN_TASK, RoutingState, resolve_generation_task_ids, resolve_task_ids


class AdapterHandle:
    """What :func:`get_model` attaches to the model: config, routing state, layers, and losses.

    Attributes:
        include_aux_in_loss: add the regularisers to the model's returned loss (default True).
        aux_scale: factor on the regularisers when they are added (a trainer that sums several
            micro-batch losses per step sets it to keep one step's regulariser weight).
        last_losses: detached terms of the last forward that returned a loss ("task", "orth", ...).
    """

    def __init__(
        self,
        config: AdapterConfig,
        layers: dict[str, AdapterLayer],
        state: RoutingState,
        requires_grad_before: dict[str, bool],
    ) -> None:
        self.config = config
        self.layers = layers
        self.state = state
        self.layer_class = get_method(config.method)[1]
        self.requires_grad_before = requires_grad_before
        self.include_aux_in_loss = True
        self.aux_scale = 1.0
        self.last_losses: dict[str, torch.Tensor] = {}
        self.enabled_input_grads = False
        self.marked_adapters_attached = False
        # full shapes, recorded before any FSDP / ZeRO-3 sharding: what a saved adapter must hold
        self.tensor_shapes = {
            f"{name}.{key}": tuple(value.shape)
            for name, layer in layers.items()
            for key, value in layer.adapter_state().items()
        }

    def aux_losses(self) -> dict[str, torch.Tensor]:
        """The method's weighted regulariser terms (e.g. ``orth``, ``match``), with gradients.

        Computed outside any autocast region: they depend on the float32 adapter parameters only,
        and products like A A^T lose precision in bf16.
        """
        layers = list(self.layers.values())
        device_type = layers[0].device.type if layers else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            return self.layer_class.combine_aux_losses(layers, self.config)

    def after_optimizer_step(self) -> None:
        """Run once after each optimizer step (e.g. SMoRA's load-balancing bias update)."""
        for layer in self.layers.values():
            layer.after_optimizer_step()

    def set_task_ids(
        self, task_ids, inputs: torch.Tensor | None, *, rows_per_example: int | None = None
    ) -> torch.Tensor | None:
        """Validate ``task_ids`` for a batch shaped like ``inputs``, store them for the layers, return them.

        ``rows_per_example``: set by ``generate`` (beams / returned sequences per example); the ids
        are then resolved per example of its input batch (see ``resolve_generation_task_ids``).
        """
        config = self.config
        if task_ids is None and config.requires_task:
            raise ValueError(
                f"method '{config.method}' routes by task and needs task_ids=... (a LongTensor of shape "
                f"(batch,) or a list of task names); known tasks (id: name): {dict(enumerate(config.tasks))}"
            )
        if task_ids is not None and not config.uses_task and not config.tasks:
            task_ids = None  # a task-agnostic adapter trained without task names ignores the ids
        batch, device = (inputs.shape[0], inputs.device) if inputs is not None else (None, None)
        allow_unseen = not config.requires_task
        if rows_per_example is None:
            ids = resolve_task_ids(task_ids, config.tasks, batch, allow_unseen=allow_unseen, device=device)
        else:
            ids = resolve_generation_task_ids(
                task_ids, config.tasks, batch, rows_per_example, allow_unseen=allow_unseen, device=device
            )
        self.state.task_ids = ids
        self.state.forward_count += 1
        self.state.routing.clear()
        return ids

    def follow_parameter_dtype(self) -> None:
        """Make the layers cast their input to their parameters' dtype after ``model.to(dtype)``.

        A cast of the model (``.to(torch.bfloat16)``, ``.half()``) casts the adapter's parameters too,
        as in PEFT; each layer computes in ``layer.adapter_dtype``, which is updated here. One layer is
        checked per call (a cast of the whole model casts them all).
        """
        first = next(iter(self.layers.values()), None)
        if first is None or _own_parameter_dtype(first) == first.adapter_dtype:
            return
        for layer in self.layers.values():
            layer.adapter_dtype = _own_parameter_dtype(layer)

    def add_aux_losses(self, output):
        """Add the weighted regularisers to ``output.loss`` (if any) and keep the terms for logging."""
        loss = getattr(output, "loss", None)
        if loss is None or not self.include_aux_in_loss:
            return output
        terms = self.aux_losses()
        self.last_losses = {"task": loss.detach()} | {k: v.detach() for k, v in terms.items()}
        if terms:
            output.loss = loss + self.aux_scale * sum(t.to(loss.device) for t in terms.values())
        return output


def _own_parameter_dtype(layer: AdapterLayer) -> torch.dtype:
    """The dtype of the layer's first own (not its base layer's) parameter."""
    return next(p.dtype for name, p in layer.named_parameters() if not name.startswith("base_layer."))


def _matches(name: str, target: list[str] | str) -> str | None:
    """The target entry that selects module ``name`` (or the regex itself), else None."""
    if isinstance(target, str):
        return target if re.fullmatch(target, name) else None
    for entry in target:
        if name == entry or name.endswith("." + entry):
            return entry
    return None


def find_targets(model: nn.Module, target: list[str] | str) -> dict[str, nn.Module]:
    """Module name -> linear layer selected by ``target``; a clear error for entries matching nothing."""
    selected, used, unsupported = {}, set(), []
    for name, module in model.named_modules():
        entry = _matches(name, target) if name else None
        if entry is None:
            continue
        used.add(entry)
        try:
            linear_shape(module)
        except TypeError:
            unsupported.append(f"{name} ({type(module).__name__})")
            continue
        selected[name] = module
    entries = [target] if isinstance(target, str) else target
    unmatched = [e for e in entries if e not in used]
    if unmatched or unsupported or not selected:
        linear_names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if _is_linear(m)})
        problems = []
        if unmatched:
            problems.append(f"target_modules entries that matched no module: {unmatched}")
        if unsupported:
            problems.append(f"matched modules that are not linear layers: {unsupported[:8]}")
        raise ValueError(
            "; ".join(problems or ["target_modules selected no linear layer"])
            + f". Linear layers in this model are named: {linear_names}"
        )
    return selected


def _is_linear(module: nn.Module) -> bool:
    try:
        linear_shape(module)
        return True
    except TypeError:
        return False


def get_model(
    model: nn.Module, config: AdapterConfig, *, adapter_dtype: torch.dtype = torch.float32, init_weights: bool = True
) -> nn.Module:
    """Adapt ``model`` in place with the method ``config`` names, freeze everything else, return it.

    Args:
        model: any ``transformers`` PreTrainedModel (or nn.Module with linear layers).
        config: a method config (``SAMoRAConfig(...)``, ``LoRAConfig(...)``...). It is not changed: the
            adapter keeps a copy (``adapter_of(model).config``), with ``base_model`` filled in from
            ``model.name_or_path`` when it is None.
        adapter_dtype: dtype of the adapter's parameters; float32 by default even for a bf16 base.
        init_weights: False leaves the adapter uninitialised, for loading saved weights right after.
    """
    if adapter_or_none(model) is not None:
        raise ValueError("this model already has a samora adapter; call samora.unload(model) first")
    _, layer_class = get_method(config.method)
    targets = find_targets(model, config.target_modules)
    # The adapter keeps its own copy, with the base recorded by name (the hub id or the bundled model's
    # name, not a machine-local cache path); the caller's config is left as it was.
    base_model = (
        config.base_model
        if config.base_model is not None
        else base_model_identity(getattr(model, "name_or_path", None))[0]
    )
    config = dataclasses.replace(config, base_model=base_model)
    requires_grad_before = {n: p.requires_grad for n, p in model.named_parameters()}
    state = RoutingState()
    layers = {}
    for name, module in targets.items():
        layer = layer_class(module, config, state, name=name, adapter_dtype=adapter_dtype)
        if init_weights:
            layer.reset_parameters()
        layer.train(module.training)  # a new module starts in training mode; follow the model's
        layers[name] = layer
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name, layer in layers.items():
        _set_submodule(model, name, layer)
    enable_input_grads = hasattr(model, "enable_input_require_grads") and not hasattr(model, "_require_grads_hook")
    if enable_input_grads:
        # Reentrant gradient checkpointing only back-propagates into a checkpointed block when its
        # input requires grad; with a frozen embedding it would not, and the adapters would get none.
        model.enable_input_require_grads()
    handle = AdapterHandle(config, layers, state, requires_grad_before)
    handle.enabled_input_grads = enable_input_grads
    handle.marked_adapters_attached = _mark_adapters_attached(model)
    setattr(model, ATTRIBUTE, handle)
    bind(model)
    return model


def unload(model: nn.Module) -> nn.Module:
    """Remove the adapter: restore the original layers, forward and ``requires_grad`` flags."""
    handle = adapter_of(model)
    unbind(model)
    for name, layer in handle.layers.items():
        _set_submodule(model, name, layer.base_layer)
    if handle.enabled_input_grads:
        model.disable_input_require_grads()
    if handle.marked_adapters_attached:
        del model._hf_peft_config_loaded
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(handle.requires_grad_before.get(name, parameter.requires_grad))
    delattr(model, ATTRIBUTE)
    return model


def _mark_adapters_attached(model: nn.Module) -> bool:
    """Tell transformers that a quantized ``model`` (QLoRA) now carries trainable adapters; return
    whether it was marked.

    The ``Trainer`` refuses to fine-tune a quantized model ("purely quantized models") unless it is a
    PEFT model or carries adapters attached through transformers' own PEFT integration, which
    ``add_adapter`` records as the instance flag ``_hf_peft_config_loaded``. samora's layers are such
    adapters, so the flag is set on this instance (the class is untouched) and removed by :func:`unload`.
    """
    if not getattr(model, "is_quantized", False) or getattr(model, "_hf_peft_config_loaded", False):
        return False
    model._hf_peft_config_loaded = True
    return True


def adapter_of(model: nn.Module) -> AdapterHandle:
    """The model's :class:`AdapterHandle`; a clear error if it has none."""
    handle = adapter_or_none(model)
    if handle is None:
        raise ValueError("this model has no samora adapter; call samora.get_model(model, config) first")
    return handle


def adapter_or_none(model: nn.Module) -> AdapterHandle | None:
    """The model's :class:`AdapterHandle`, or None for a model samora has not adapted (a plain base)."""
    return getattr(model, ATTRIBUTE, None)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} || all params: {self.total:,} || trainable%: {self.percent:.4f}"


def trainable_parameters(model: nn.Module) -> ParameterCount:
    """Count trainable and total parameters (tied weights counted once)."""
    seen, trainable, total = set(), 0, 0
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return ParameterCount(trainable, total)


def print_trainable_parameters(model: nn.Module) -> None:
    print(trainable_parameters(model))


__all__ = [
    "UNSEEN_TASK",
    "AdapterHandle",
    "adapter_of",
    "find_targets",
    "get_model",
    "print_trainable_parameters",
    "trainable_parameters",
    "unload",
]
