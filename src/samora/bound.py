"""The methods :func:`samora.get_model` binds on the one adapted instance (its class is untouched).

- ``forward``: the class's forward under its own signature plus a keyword ``task_ids``
  (``generate`` validates its keyword arguments against that signature, and the Trainer keeps only
  dataset columns it names, so ``task_ids`` passes through both). It stores the validated task ids
  in the shared :class:`~samora.routing.RoutingState` for the layers, calls the class's forward, and
  adds the weighted regularisers to the returned loss when there is one. They are computed from
  parameters once per forward, outside any gradient-checkpointed layer, so they train under
  checkpointing too (inside a reentrant checkpoint they would get no gradient).
- ``generate``: the class's generate, with ``task_ids`` resolved once for its input batch (one id
  per example, or one per generated row, see :func:`~samora.routing.resolve_generation_task_ids`)
  and handed on as a tensor (batch,), which ``generate`` repeats for beams and returned sequences as
  it repeats every input. The ids are also stored before the class's generate runs: an
  encoder-decoder model's ``generate`` calls its encoder directly, not through this forward, and
  the encoder layers must route with this call's ids, not the previous call's. Inside it the layers
  keep the values they compute from parameters alone (normalised keys, stacked experts, task
  gates): the parameters cannot change during one call, and every generated token would recompute
  them.
- ``save_pretrained`` and ``push_to_hub`` refuse, saying what to use instead: the adapted model's
  state dict names its adapted linears ``<name>.base_layer.weight``, which ``from_pretrained`` does
  not know, so the base's q/k/v/o weights would silently reload at random.

Both ``forward`` and ``generate`` first let the layers follow a cast of the model
(:meth:`~samora.inject.AdapterHandle.follow_parameter_dtype`).
"""

from __future__ import annotations

import functools
import inspect
import types

import torch
from torch import nn

ATTRIBUTE = "samora_adapter"
BOUND = ("forward", "generate", "save_pretrained", "push_to_hub")
_BATCH_INPUTS = ("input_ids", "inputs_embeds", "decoder_input_ids", "decoder_inputs_embeds")


def batch_input(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The call's input whose leading dimension is the batch (at least 2-D), or None."""
    candidates = list(args[:1]) + [kwargs.get(name) for name in ("inputs",) + _BATCH_INPUTS]
    return next((c for c in candidates if isinstance(c, torch.Tensor) and c.dim() > 1), None)


def _adapted_forward(self, *args, task_ids=None, **kwargs):
    """The class's forward, with ``task_ids`` routed to the adapter layers and regularisers added."""
    handle = getattr(self, ATTRIBUTE)
    handle.follow_parameter_dtype()
    handle.set_task_ids(task_ids, batch_input(args, kwargs))
    handle.state.attention_mask = kwargs.get("attention_mask")  # SMoRA counts real tokens only
    return handle.add_aux_losses(type(self).forward(self, *args, **kwargs))


def _adapted_generate(self, *args, **kwargs):
    """The class's generate, with ``task_ids`` resolved for its input batch and stored before it runs."""
    handle = getattr(self, ATTRIBUTE)
    handle.follow_parameter_dtype()
    ids = handle.set_task_ids(
        kwargs.get("task_ids"), batch_input(args, kwargs), rows_per_example=_rows_per_example(self, kwargs)
    )
    if ids is not None or "task_ids" in kwargs:
        kwargs["task_ids"] = ids
    state = handle.state
    outer = state.constants
    state.constants = {} if outer is None else outer
    try:
        return type(self).generate(self, *args, **kwargs)
    finally:
        state.constants = outer


def _rows_per_example(model: nn.Module, kwargs: dict) -> int:
    """How many rows ``generate`` makes of each example: max(num_beams, num_return_sequences), as it does."""
    config = kwargs.get("generation_config") or getattr(model, "generation_config", None)
    beams = kwargs.get("num_beams") or getattr(config, "num_beams", None) or 1
    returned = kwargs.get("num_return_sequences") or getattr(config, "num_return_sequences", None) or 1
    return max(int(beams), int(returned))


SAVE_REFUSAL = (
    "this model carries a samora adapter, and save_pretrained / push_to_hub would write its adapted "
    "linears under names from_pretrained does not know (the base's weights would reload at random). "
    "Save the adapter with samora.save_adapter(model, folder) and reload it with "
    "samora.load_adapter(base_model, folder); for a plain transformers checkpoint, fold a mergeable "
    "adapter in first with samora.merge(model) (or samora.merge_for_task(model, task)), or save the "
    "base alone after samora.unload(model)"
)


def save_pretrained(self, *args, **kwargs):
    """Refused on an adapted model; see the error message for what to use instead."""
    raise RuntimeError(SAVE_REFUSAL)


def push_to_hub(self, *args, **kwargs):
    """Refused on an adapted model; see the error message for what to use instead."""
    raise RuntimeError(SAVE_REFUSAL)


def bind(model: nn.Module) -> None:
    """Bind forward, generate (when the class generates), save_pretrained and push_to_hub on ``model``."""
    cls = type(model)
    model.forward = types.MethodType(_forward_with_task_ids(cls.forward), model)
    if getattr(cls, "generate", None) is not None:
        model.generate = types.MethodType(_generate_with_task_ids(cls.generate), model)
    for refusal in (save_pretrained, push_to_hub):
        if getattr(cls, refusal.__name__, None) is not None:
            setattr(model, refusal.__name__, types.MethodType(refusal, model))


def unbind(model: nn.Module) -> None:
    """Remove what :func:`bind` bound, so the class's own methods apply again."""
    for name in BOUND:
        if name in model.__dict__:
            delattr(model, name)


def _forward_with_task_ids(class_forward):
    """:func:`_adapted_forward` under the class forward's signature plus a keyword ``task_ids``.

    The signature is what ``generate`` checks its keyword arguments against and what the Trainer
    reads to keep dataset columns, so ``task_ids`` must appear in it.
    """

    def forward(self, *args, task_ids=None, **kwargs):
        return _adapted_forward(self, *args, task_ids=task_ids, **kwargs)

    signature = inspect.signature(class_forward)
    parameters = list(signature.parameters.values())
    task_ids = inspect.Parameter("task_ids", inspect.Parameter.KEYWORD_ONLY, default=None)
    at = next((i for i, p in enumerate(parameters) if p.kind is p.VAR_KEYWORD), len(parameters))
    forward.__signature__ = signature.replace(parameters=parameters[:at] + [task_ids] + parameters[at:])
    forward.__doc__ = _adapted_forward.__doc__
    return forward


def _generate_with_task_ids(class_generate):
    """:func:`_adapted_generate` under the class generate's name, signature and doc."""

    @functools.wraps(class_generate)
    def generate(self, *args, **kwargs):
        return _adapted_generate(self, *args, **kwargs)

    return generate
