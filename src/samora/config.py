"""Configuration shared by every adapter method.

Each method subclasses :class:`AdapterConfig` (or :class:`MixtureConfig` when it has experts, and
:class:`ScaledConfig` when its update is scaled by alpha / r) in its own module under
:mod:`samora.methods`, adds its hyperparameters as dataclass fields, and declares how it uses the
task id through class attributes (not saved, they describe the method):

- ``uses_task``: the update depends on the per-example task id;
- ``requires_task``: the method cannot run without a task id (no route for an unseen task);
- ``merge_kind``: ``"static"`` (foldable into W), ``"per_task"`` (foldable once a task is fixed) or
  ``"token"`` (routed per token: never foldable into fixed weights);
- ``card``: a :class:`MethodCard`, the method's row in the generated table ``docs/methods.md``.

**What a field accepts is declared once, on the field.** Its annotation gives the type (int, float,
bool, str, optionally ``| None``) and :func:`setting` its choices or bounds, e.g.
``temperature: float = setting(0.8, gt=0)`` or ``router: str = setting("semantic", choices=(...))``.
:func:`validate_fields` checks every field of a config against them (run on construction, before
the method's own ``validate``, which keeps only the rules between fields, such as ``top_k <= r``);
:func:`field_rules` returns them, for anything else that must accept the same values. A subclass
that only changes a default (``r: int = 16``) keeps the rule its base declared.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
CHECKED_TYPES = (bool, int, float, str)  # annotations validate_fields checks; others have their own rule


@dataclass(frozen=True)
class MethodCard:
    """What a method says about itself in ``docs/methods.md`` (see :mod:`samora.run.method_docs`).

    Task use and mergeability are not repeated here: the table reads them from ``uses_task``,
    ``requires_task`` and ``merge_kind``, so they cannot disagree with the code.

    Attributes:
        title: display name and paper, e.g. ``"LoRA (Hu et al., 2021)"``.
        equation: the update added to W x, in plain text.
        router: what the mixture weights are computed from (``"none"`` without a router).
        init: how the parameters start (the adapted model must equal the base at init).
        parameters: trainable parameters per adapted module, in d_in, d_out, r, N, T...
    """

    title: str
    equation: str
    router: str
    init: str
    parameters: str


@dataclass(frozen=True)
class Rule:
    """What one config field accepts: its type, its choices or bounds, and a few words on what it is.

    Attributes:
        kind: the annotated type checked (``int``, ``float``, ``bool``, ``str``); a float must be finite,
            an int or bool must be one (``True`` is not an int here), an int is a float.
        optional: None is accepted too (``str | None``).
        choices: the allowed values with what each means (``""`` when it says nothing more).
        ge, gt, le, lt: bounds on a number (>=, >, <=, <).
        meaning: a few words on the field, put after its name in the error message.
    """

    kind: type | None = None
    optional: bool = False
    choices: tuple[tuple[Any, str], ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    meaning: str = ""

    @property
    def values(self) -> tuple:
        """The allowed values, when the field has choices (else empty)."""
        return tuple(value for value, _ in self.choices)

    def expected(self) -> str:
        """What the field accepts, in words: ``"a positive int"``, ``"> 0"``, ``"'linear' or 'mlp'"``."""
        bounds = self._bounds()
        if self.choices:
            text = _alternatives([repr(v) + (f" ({note})" if note else "") for v, note in self.choices])
        elif self.kind is bool:
            text = "True or False"
        elif self.kind is int:
            text = "a positive int" if bounds == ">= 1" else "an int" + (f" {bounds}" if bounds else "")
        elif self.kind is float:
            text = bounds or "a finite number"
        else:
            text = "a string" if self.kind is str else bounds or "any value"
        return text + (" or None" if self.optional else "")

    def violation(self, name: str, value: Any) -> str | None:
        """The error message for ``value`` in field ``name``, or None when the value is accepted."""
        if value is None and self.optional:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} must be a finite number, got {value!r}"
        if self._has_type(value) and self._in_range(value) and (not self.choices or value in self.values):
            return None
        label = f"{name} ({self.meaning})" if self.meaning else name
        return f"{label} must be {self.expected()}, got {value!r}"

    def _has_type(self, value: Any) -> bool:
        if self.kind is None:
            return True
        if self.kind is bool or isinstance(value, bool):
            return self.kind is bool and isinstance(value, bool)
        return isinstance(value, (int, float) if self.kind is float else self.kind)

    def _in_range(self, value: Any) -> bool:
        checks = (
            (self.ge, lambda b: value >= b),
            (self.gt, lambda b: value > b),
            (self.le, lambda b: value <= b),
            (self.lt, lambda b: value < b),
        )
        return all(bound is None or check(bound) for bound, check in checks)

    def _bounds(self) -> str:
        """``"> 0"``, ``">= 1"``, ``"in [0, 1)"``..., or ``""`` without bounds."""
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else ""
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else ""
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
        return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}" if high else ""


def _alternatives(items: list[str]) -> str:
    return " or ".join(items) if len(items) <= 2 else "one of " + ", ".join(items)


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    choices: dict[Any, str] | tuple = (),
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    meaning: str = "",
) -> Any:
    """A dataclass field with its default and what it accepts besides its annotated type.

    Args:
        default / default_factory: as for :func:`dataclasses.field` (give one).
        choices: the allowed values, or a dict value -> what it means (the error lists them).
        ge, gt, le, lt: bounds (>=, >, <=, <) on a number.
        meaning: a few words on what the field is, put after its name in the error message.
    """
    pairs = tuple(choices.items()) if isinstance(choices, dict) else tuple((value, "") for value in choices)
    rule = Rule(choices=pairs, ge=ge, gt=gt, le=le, lt=lt, meaning=meaning)
    return field(default=default, default_factory=default_factory, metadata={"rule": rule})


def task_embedding_size(default: int) -> Any:
    """The ``task_dim`` field of a method with a task embedding e_t: its size, a positive int."""
    return setting(default, ge=1)


def field_rules(config_cls: type) -> dict[str, Rule]:
    """Field name -> :class:`Rule` for every field of ``config_cls`` with a checked
    type (int, float, bool, str, or one of these or None), in field order.

    The rule joins the annotation's type with the bounds or choices declared by :func:`setting` on
    the field, or on the nearest base class that declared one for that name.
    """
    return dict(_rules_of(config_cls))  # a copy: the cached table stays as declared


@functools.cache
def _rules_of(config_cls: type) -> dict[str, Rule]:
    hints = typing.get_type_hints(config_cls)
    rules = {}
    for item in dataclasses.fields(config_cls):
        kind, optional = _checked_type(hints[item.name])
        if kind is None:
            continue
        declared = _declared_rule(config_cls, item.name)
        rules[item.name] = dataclasses.replace(declared or Rule(), kind=kind, optional=optional)
    return rules


def _declared_rule(config_cls: type, name: str) -> Rule | None:
    """The rule :func:`setting` declared for field ``name`` on ``config_cls`` or its nearest base."""
    for base in config_cls.__mro__:
        declared = getattr(base, "__dataclass_fields__", {}).get(name)
        if declared is not None and "rule" in declared.metadata:
            return declared.metadata["rule"]
    return None


def _checked_type(hint: Any) -> tuple[type | None, bool]:
    """(int | float | bool | str, whether None is allowed) for a simple annotation, else (None, False)."""
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    kinds = [o for o in options if o is not type(None)]
    if len(kinds) == 1 and kinds[0] in CHECKED_TYPES:
        return kinds[0], len(kinds) < len(options)
    return None, False


def validate_fields(config: Any, names: list[str] | None = None) -> None:
    """Check each field of ``config`` (or only ``names``) against its rule; ``ValueError`` naming the
    first field that fails, what it accepts, and the value given."""
    for name, rule in _rules_of(type(config)).items():
        if names is None or name in names:
            problem = rule.violation(name, getattr(config, name))
            if problem:
                raise ValueError(problem)


@dataclass
class AdapterConfig:
    """Fields every method shares.

    Attributes:
        r: rank of the low-rank update (the paper's r; 8 in its scripts, 8..64 changes little).
        target_modules: which linear layers to adapt. A list matches a module whose full name equals
            an entry or ends with ``"." + entry`` (``["q_proj", "v_proj"]``); a string is a regular
            expression that must match the whole module name (``r".*layers\\.[0-3]\\..*proj"``).
            The default is the attention projections q/k/v/o, as in the paper.
        tasks: task names in id order; ``task_ids=`` may name these or give their indices. The order
            is saved with the adapter, so ids mean the same thing after loading.
        dropout: dropout on the adapter's input x (the frozen path never sees it); 0.05 in the paper.
        base_model: name or path of the base model, filled in by :func:`samora.get_model`.
    """

    method: ClassVar[str] = ""
    uses_task: ClassVar[bool] = False
    requires_task: ClassVar[bool] = False
    merge_kind: ClassVar[str] = "static"
    card: ClassVar[MethodCard | None] = None

    r: int = setting(8, ge=1)
    target_modules: list[str] | str = field(default_factory=lambda: list(DEFAULT_TARGETS))
    tasks: list[str] = field(default_factory=list)
    dropout: float = setting(0.05, ge=0.0, lt=1.0)
    base_model: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)
        if isinstance(self.tasks, str):
            raise ValueError(
                f"tasks must be a list of task names, got the string {self.tasks!r}; write tasks=[{self.tasks!r}]"
            )
        self.tasks = list(self.tasks)
        validate_fields(self)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field to change; the rules :func:`validate_fields` cannot
        express (a subclass adds the ones between its fields)."""
        if isinstance(self.target_modules, str):
            try:
                re.compile(self.target_modules)
            except re.error as err:
                raise ValueError(f"target_modules is not a valid regular expression: {err}") from err
        elif not self.target_modules or not all(isinstance(t, str) for t in self.target_modules):
            raise ValueError("target_modules must be a non-empty list of module names or suffixes, or a regex string")
        if not all(isinstance(t, str) and t for t in self.tasks):
            raise ValueError("tasks must be non-empty strings")
        dupes = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if dupes:
            raise ValueError(f"tasks must be unique; repeated: {dupes}")
        if self.requires_task and not self.tasks:
            raise ValueError(f"method '{self.method}' routes by task: give tasks=[...] (the task names in id order)")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AdapterConfig:
        """Build this config from a dict, rejecting keys it does not know (naming the valid ones)."""
        values = {k: v for k, v in values.items() if k != "method"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**values)


@dataclass
class MixtureConfig(AdapterConfig):
    """An adapter with several experts.

    Attributes:
        num_experts: number of experts N (the paper uses 3).
    """

    num_experts: int = setting(3, ge=1)


@dataclass
class ScaledConfig(AdapterConfig):
    """An adapter whose update is multiplied by ``scaling = alpha / r``.

    Attributes:
        alpha: scale numerator; the update is multiplied by ``alpha / r`` so that changing r does not
            change the effective learning rate much (16 with r = 8 in most public scripts).
    """

    alpha: float = setting(16.0, gt=0, meaning="the update's scale numerator, alpha / r")

    @property
    def scaling(self) -> float:
        """The factor on the update: ``alpha / r``."""
        return self.alpha / self.r
