"""Parameter accounting: trainable-parameter counts without adapting, parameter-matched sizes.

Counts come from the method's own layer class, built on the ``meta`` device (shapes only, no
memory, no initialisation) for each distinct (d_in, d_out) among the target modules, so they are
right for any registered method without a formula to keep in sync. The model itself may live on
the meta device too, to count for a large model without loading it::

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(name))
    adapter_parameter_count(model, SAMoRAConfig(tasks=tasks))
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable

from torch import nn

from samora.config import AdapterConfig
from samora.inject import find_targets
from samora.methods import get_method
from samora.methods.base import linear_shape
from samora.routing import RoutingState


def module_parameter_count(config: AdapterConfig, in_features: int, out_features: int) -> int:
    """Trainable parameters the method of ``config`` adds to one (d_in -> d_out) linear layer."""
    _, layer_class = get_method(config.method)
    base = nn.Linear(in_features, out_features, bias=False, device="meta")
    layer = layer_class(base, config, RoutingState())
    return sum(
        p.numel() for name, p in layer.named_parameters() if p.requires_grad and not name.startswith("base_layer.")
    )


def adapter_parameter_count(model: nn.Module, config: AdapterConfig) -> int:
    """Trainable parameters ``samora.get_model(model, config)`` would add, without adapting ``model``.

    Equals ``trainable_parameters(adapted).trainable`` for a model whose own weights are frozen.
    """
    shapes = Counter(linear_shape(m)[:2] for m in find_targets(model, config.target_modules).values())
    return sum(count * module_parameter_count(config, d_in, d_out) for (d_in, d_out), count in shapes.items())


@dataclasses.dataclass(frozen=True)
class BudgetMatch:
    """The result of :func:`match_parameter_budget`: the chosen config and its count."""

    config: AdapterConfig
    count: int
    budget: int

    @property
    def relative_gap(self) -> float:
        """(count - budget) / budget: positive when the match is larger than the budget."""
        return (self.count - self.budget) / self.budget


def match_parameter_budget(
    model: nn.Module,
    config: AdapterConfig,
    budget: int | AdapterConfig,
    *,
    size: str = "r",
    candidates: Iterable[int] = range(1, 513),
) -> BudgetMatch:
    """Pick the value of ``config.<size>`` whose adapter count on ``model`` is closest to ``budget``.

    For parameter-matched comparisons, e.g. the LoRA rank closest to SAMoRA r = 8, N = 3::

        match_parameter_budget(model, LoRAConfig(), SAMoRAConfig(tasks=tasks)).config.r

    Args:
        budget: a parameter count, or a config whose count on the same model is the budget.
        size: the integer field to vary: ``"r"`` or ``"num_experts"`` (any int field works).
        candidates: values to try; values the config rejects (e.g. an r that MoELoRA's experts do
            not divide) are skipped. Ties go to the smaller count.
    """
    if isinstance(budget, AdapterConfig):
        budget = adapter_parameter_count(model, budget)
    fields = {f.name for f in dataclasses.fields(config)}
    if size not in fields or not isinstance(getattr(config, size), int) or isinstance(getattr(config, size), bool):
        ints = sorted(f for f in fields if type(getattr(config, f)) is int)
        raise ValueError(f"size must name an int field of {type(config).__name__}: one of {ints}, got {size!r}")
    best, rejected = None, []
    for value in candidates:
        try:
            trial = dataclasses.replace(config, **{size: value})
        except ValueError as err:
            rejected.append(f"{value} ({err})")
            continue
        count = adapter_parameter_count(model, trial)
        if best is None or (abs(count - budget), count) < (abs(best.count - budget), best.count):
            best = BudgetMatch(trial, count, budget)
    if best is None:
        raise ValueError(f"no candidate value of {size} is valid for {type(config).__name__}: {rejected[:3]}")
    return best
