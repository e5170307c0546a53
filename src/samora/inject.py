"""Find target linears in any transformers model, swap in adapter layers, freeze the rest.

:func:`get_model` adapts a model in place and attaches an :class:`AdapterHandle` as
``model.samora_adapter``. It also binds, on that one instance (the class is untouched), a forward
whose signature is the class's plus a keyword ``task_ids``: ``generate`` validates its keyword
arguments against that signature, and the Trainer keeps only dataset columns it names, so
``task_ids`` passes through both. The bound forward

- stores the validated task ids in the shared :class:`~samora.routing.RoutingState` for the layers,
- calls the class's forward, and
- adds the weighted regularisers to the returned loss when there is one. They are computed from
  parameters once per forward, outside any gradient-checkpointed layer, so they train under
  checkpointing too (inside a reentrant checkpoint they would get no gradient).

It binds ``generate`` the same way, to the class's generate inside a scope where the layers keep
the values they compute from parameters alone (normalised keys, stacked experts, task gates): the
parameters cannot change during one call, and every generated token would recompute them.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
from dataclasses import dataclass

import torch
from torch import nn

from samora.config import AdapterConfig
from samora.methods import AdapterLayer, get_method
from samora.methods.base import linear_shape
from samora.routing import UNSEEN_TASK, RoutingState, resolve_task_ids

ATTRIBUTE = "samora_adapter"


class AdapterHandle:
    """What :func:`get_model` attaches to the model: config, routing state, layers, and losses.

    Attributes:
        include_aux_in_loss: add the regularisers to the model's returned loss (default True).
        aux_scale: factor on the regularisers when they are added (a trainer that sums several
            micro-batch losses per step sets it to keep one step's regulariser weight).
        last_losses: detached terms of the last forward that returned a loss ("task", "orth", ...).
    """

    def __init__(self, config: AdapterConfig, layers: dict[str, AdapterLayer], state: RoutingState,
                 requires_grad_before: dict[str, bool]) -> None:
        self.config = config
        self.layers = layers
        self.state = state
        self.layer_class = get_method(config.method)[1]
        self.requires_grad_before = requires_grad_before
        self.include_aux_in_loss = True
        self.aux_scale = 1.0
        self.last_losses: dict[str, torch.Tensor] = {}
        self.enabled_input_grads = False
        # full shapes, recorded before any FSDP / ZeRO-3 sharding: what a saved adapter must hold
        self.tensor_shapes = {f"{name}.{key}": tuple(value.shape) for name, layer in layers.items()
                              for key, value in layer.adapter_state().items()}

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

    def set_task_ids(self, task_ids, inputs: torch.Tensor | None, *, generating: bool) -> None:
        """Validate ``task_ids`` for a batch shaped like ``inputs`` and store them for the layers."""
        config = self.config
        if task_ids is None and config.requires_task:
            raise ValueError(
                f"method '{config.method}' routes by task and needs task_ids=... (a LongTensor of shape "
                f"(batch,) or a list of task names); known tasks (id: name): {dict(enumerate(config.tasks))}"
            )
        if task_ids is not None and not config.uses_task and not config.tasks:
            task_ids = None  # a task-agnostic adapter trained without task names ignores the ids
        is_batch = isinstance(inputs, torch.Tensor) and inputs.dim() > 1
        self.state.task_ids = resolve_task_ids(
            task_ids, config.tasks, inputs.shape[0] if is_batch else None,
            allow_unseen=not config.requires_task, allow_expand=generating,
            device=inputs.device if is_batch else None,
        )
        self.state.forward_count += 1
        self.state.routing.clear()

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


def _adapted_forward(self, *args, task_ids=None, **kwargs):
    """The class's forward, with ``task_ids`` routed to the adapter layers and regularisers added."""
    handle = getattr(self, ATTRIBUTE)
    inputs = kwargs.get("input_ids", args[0] if args else None)
    if inputs is None:
        inputs = kwargs.get("inputs_embeds")
    handle.set_task_ids(task_ids, inputs, generating=kwargs.get("past_key_values") is not None)
    handle.state.attention_mask = kwargs.get("attention_mask")  # SMoRA counts real tokens only
    return handle.add_aux_losses(type(self).forward(self, *args, **kwargs))


def _bind_forward(model: nn.Module) -> None:
    """Bind :func:`_adapted_forward` to ``model`` under the class forward's signature plus task_ids."""
    signature = inspect.signature(type(model).forward)
    parameters = list(signature.parameters.values())
    task_ids = inspect.Parameter("task_ids", inspect.Parameter.KEYWORD_ONLY, default=None)
    at = next((i for i, p in enumerate(parameters) if p.kind is p.VAR_KEYWORD), len(parameters))
    function = types.FunctionType(_adapted_forward.__code__, _adapted_forward.__globals__, "forward")
    function.__signature__ = signature.replace(parameters=parameters[:at] + [task_ids] + parameters[at:])
    function.__doc__ = _adapted_forward.__doc__
    function.__kwdefaults__ = dict(_adapted_forward.__kwdefaults__)
    model.forward = types.MethodType(function, model)


def _adapted_generate(self, *args, **kwargs):
    state = getattr(self, ATTRIBUTE).state
    outer = state.constants
    state.constants = {} if outer is None else outer
    try:
        return type(self).generate(self, *args, **kwargs)
    finally:
        state.constants = outer


def _bind_generate(model: nn.Module) -> None:
    """Bind :func:`_adapted_generate` to ``model`` (when its class generates), with generate's signature and doc."""
    generate = getattr(type(model), "generate", None)
    if generate is None:
        return
    function = types.FunctionType(_adapted_generate.__code__, _adapted_generate.__globals__, "generate")
    functools.update_wrapper(function, generate)
    model.generate = types.MethodType(function, model)


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


def get_model(model: nn.Module, config: AdapterConfig, *, adapter_dtype: torch.dtype = torch.float32,
              init_weights: bool = True) -> nn.Module:
    """Adapt ``model`` in place with the method ``config`` names, freeze everything else, return it.

    Args:
        model: any ``transformers`` PreTrainedModel (or nn.Module with linear layers).
        config: a method config (``SAMoRAConfig(...)``, ``LoRAConfig(...)``...).
        adapter_dtype: dtype of the adapter's parameters; float32 by default even for a bf16 base.
        init_weights: False leaves the adapter uninitialised, for loading saved weights right after.
    """
    if getattr(model, ATTRIBUTE, None) is not None:
        raise ValueError("this model already has a samora adapter; call samora.unload(model) first")
    _, layer_class = get_method(config.method)
    targets = find_targets(model, config.target_modules)
    if config.base_model is None:
        config.base_model = getattr(model, "name_or_path", None) or None
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
    setattr(model, ATTRIBUTE, handle)
    _bind_forward(model)
    _bind_generate(model)
    return model


def unload(model: nn.Module) -> nn.Module:
    """Remove the adapter: restore the original layers, forward and ``requires_grad`` flags."""
    handle = adapter_of(model)
    for bound in ("forward", "generate"):
        if bound in model.__dict__:
            delattr(model, bound)
    for name, layer in handle.layers.items():
        _set_submodule(model, name, layer.base_layer)
    if handle.enabled_input_grads:
        model.disable_input_require_grads()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(handle.requires_grad_before.get(name, parameter.requires_grad))
    delattr(model, ATTRIBUTE)
    return model


def adapter_of(model: nn.Module) -> AdapterHandle:
    """The model's :class:`AdapterHandle`; a clear error if it has none."""
    handle = getattr(model, ATTRIBUTE, None)
    if handle is None:
        raise ValueError("this model has no samora adapter; call samora.get_model(model, config) first")
    return handle


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


__all__ = ["UNSEEN_TASK", "AdapterHandle", "adapter_of", "find_targets", "get_model",
           "print_trainable_parameters", "trainable_parameters", "unload"]
