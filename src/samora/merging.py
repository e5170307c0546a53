"""Fold an adapter into the base weights, when the method allows it, and return a plain model.

What can be folded depends on how the update is routed (the config's ``merge_kind``):

- ``"static"`` (LoRA, MultiLoRA): the update is one fixed matrix; :func:`merge` folds it.
- ``"per_task"`` (MoELoRA, MTL-LoRA): the mixture depends on the task id only, so once the task is
  fixed the update is one matrix; :func:`merge_for_task` folds the update of one task. The merged
  model then serves only that task.
- ``"token"`` (SAMoRA, HydraLoRA, SMoRA, MoORE): the mixture weights depend on every input token,
  so no fixed weight reproduces the adapted model; both functions raise :class:`NotMergeableError`.

The merged model computes ``(W + delta_W) x`` with ``W + delta_W`` added in the wider of the two
dtypes (float32 at least) and rounded once to the base dtype,
where the adapted model adds the update to ``W x``: the two agree in eval mode (no dropout) up to
floating-point rounding (the tests bound the difference).
"""

from __future__ import annotations

import torch
from torch import nn

from samora.inject import adapter_of, unload
from samora.methods.base import NotMergeableError
from samora.routing import resolve_task_ids


def merge(model: nn.Module) -> nn.Module:
    """Fold a static adapter (LoRA, MultiLoRA) into the base weights; return the plain model.

    The model is changed in place: its adapted weights become ``W + delta_W`` and the adapter (and
    its ``task_ids`` forward) is removed, as by :func:`samora.unload`.
    """
    config = adapter_of(model).config
    if config.merge_kind == "per_task":
        raise NotMergeableError(
            f"method '{config.method}' mixes its experts per task, so there is one merged model per "
            f"task: use samora.merge_for_task(model, task) with a task from {config.tasks}"
        )
    return _fold(model, task_id=None)


def merge_for_task(model: nn.Module, task: str | int) -> nn.Module:
    """Fold the update of one task (name or id) into the base weights; return the plain model.

    For task-routed methods (MoELoRA, MTL-LoRA) the result equals the adapted model called with
    ``task_ids=task``, for every input. A static method (LoRA, MultiLoRA) has the same update for
    every task, so this is :func:`merge`. The model is changed in place and its adapter removed.
    """
    config = adapter_of(model).config
    if config.merge_kind == "static" and not config.tasks:
        return _fold(model, task_id=None)  # trained without task names: the task cannot matter
    ids = resolve_task_ids(task, config.tasks, None, allow_unseen=False)
    return _fold(model, task_id=int(ids[0]))


def _fold(model: nn.Module, task_id: int | None) -> nn.Module:
    handle = adapter_of(model)
    config = handle.config
    if config.merge_kind == "token":
        raise NotMergeableError(
            f"method '{config.method}' routes per token: its mixture weights depend on each input, "
            "so no fixed weight reproduces the adapted model; keep the adapter unmerged"
        )
    _refuse_quantized_base(handle.layers)
    _refuse_tied_weights(model, handle.layers)
    # Compute every update before changing anything, so an error leaves the model as it was.
    with torch.no_grad():
        updates = {name: layer.delta_weight(task_id) for name, layer in handle.layers.items() if not layer.disabled}
        for name, update in updates.items():
            layer = handle.layers[name]
            weight = layer.base_layer.weight
            update = update.T if layer.fan_in_fan_out else update  # Conv1D stores (d_in, d_out)
            weight.copy_(_merged_weight(weight, update))
    return unload(model)


def _merged_weight(weight: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """``W + delta_W`` rounded once to W's dtype, added in the wider of the two dtypes (float32 at least).

    A float64 model gets the exact float64 sum (as PEFT's merge), a bf16 one a float32 sum rounded
    once to bf16.
    """
    dtype = torch.promote_types(torch.promote_types(weight.dtype, update.dtype), torch.float32)
    return (weight.to(dtype) + update.to(weight.device, dtype)).to(weight.dtype)


def _refuse_quantized_base(layers: dict) -> None:
    """A bitsandbytes base (QLoRA) stores W packed in 4 or 8 bits: W + delta_W would be rounded back to
    that grid, losing most of a small update, so merging into it is refused with the way out."""
    quantized = {name: layer.base_quantization for name, layer in layers.items() if layer.base_quantization}
    if quantized:
        name, bits = next(iter(quantized.items()))
        raise NotMergeableError(
            f"the base model is quantized ({bits} bitsandbytes weights, e.g. {name!r}): folding the update into "
            f"them would round W + delta_W back to {bits} and lose most of the update. Load the base model "
            "unquantized (without model.quantization / quantization_config), load the adapter onto it with "
            "samora.load_adapter, and merge that model"
        )


def _refuse_tied_weights(model: nn.Module, layers: dict) -> None:
    """Folding into a weight shared with another module (a tied lm_head) would change both."""
    owners: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(parameter), []).append(name)
    for name, layer in layers.items():
        names = owners.get(id(layer.base_layer.weight), [])
        if len(names) > 1:
            raise NotMergeableError(
                f"the weight of adapted module {name!r} is shared by {names}; folding the update into it "
                "would change the other modules too. Untie the weights first or do not target this module"
            )


__all__ = ["NotMergeableError", "merge", "merge_for_task"]
