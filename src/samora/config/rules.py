"""What a setting accepts, declared once on its dataclass field, and the one machinery that checks it.

A field's annotation gives its type and :func:`setting` its choices, bounds and meaning, e.g.
``temperature: float = setting(0.8, gt=0)``, ``router: str = setting("semantic", choices=(...))`` or
``seeds: list[int] = setting(default_factory=lambda: [41], min_items=1, distinct=True)``.
:func:`field_rules` joins both into one :class:`Rule` per field, and everything that accepts a value
checks it with that rule:

- :func:`validate_fields`: an object built in Python (a method config, the training and evaluation
  settings), ``ValueError`` naming the field;
- :func:`build_section`: a mapping read from YAML files and ``key=value`` overrides, into its dataclass
  (nested sections built alike): unknown keys refused, listing the valid ones, and each value's type
  checked and converted where YAML is loose (:meth:`Rule.coerce`); :func:`check_section` then checks
  the values against the choices and bounds declared. Both raise :class:`ConfigError` naming the key
  with its section (``train.learning_rate``).

Rules exist for plain annotations: ``int``, ``float``, ``bool``, ``str``, ``list`` and ``dict`` (bare or
parametrised, ``list[str]``), unions of these and ``None`` (:func:`annotation_rule`). A field of another
type has none: its owner checks it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PLAIN_TYPES = (bool, int, float, str, list, dict)
# a value of each plain type, and several of them, in error messages
TYPE_WORDS = {
    bool: ("True or False", "booleans"),
    int: ("an int", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    list: ("a list", "lists"),
    dict: ("a mapping", "mappings"),
}

# the allowed values with what each means; or a function giving them, called when they are first needed
Choices = tuple[tuple[Any, str], ...] | Callable[[], dict | tuple]


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the key, what it accepts and the value."""


@dataclass(frozen=True)
class Rule:
    """What one setting accepts: its type, its choices or bounds, and a few words on what it is.

    Attributes:
        kind: the annotation without None (``int``, ``str | list[str]``, ``list[int]``, ``dict``...); None:
            any value. A float must be finite, an int or bool must be one (``True`` is not an int
            here), an int is a float; a ``list[X]``'s items must be X.
        optional: None is accepted too (``str | None``).
        choices: the allowed values with what each means (``""`` when it says nothing more), or a
            function returning them (a dict value -> meaning, or the values), read on first use: e.g.
            the names the installed transformers defines.
        ge, gt, le, lt: bounds on a number (>=, >, <=, <).
        min_items, distinct: a list's least length, and whether its items must differ.
        meaning: a few words on the field, put after its name in the error message.
    """

    kind: Any = None
    optional: bool = False
    choices: Choices = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_items: int | None = None
    distinct: bool = False
    meaning: str = ""

    @property
    def pairs(self) -> tuple[tuple[Any, str], ...]:
        """The allowed values with their meanings (empty without choices)."""
        return _as_pairs(self.choices()) if callable(self.choices) else self.choices

    @property
    def values(self) -> tuple:
        """The allowed values, when the field has choices (else empty)."""
        return tuple(value for value, _ in self.pairs)

    @property
    def options(self) -> tuple:
        """The types a value may have: the members of ``kind`` (empty when any value will do)."""
        if self.kind is None:
            return ()
        return typing.get_args(self.kind) if _is_union(self.kind) else (self.kind,)

    def expected(self, null: str = "None", typed: bool = False) -> str:
        """What the field accepts, in words: ``"a positive int"``, ``"> 0"``, ``"'linear' or 'mlp'"``;
        ``null`` names None (``"null"`` in YAML); ``typed`` names a number's type with its bounds
        (``"a number > 0"``), for a value of another type."""
        bounds = self._bounds()
        if self.pairs:
            text = _alternatives([repr(v) + (f" ({note})" if note else "") for v, note in self.pairs])
        elif self.kind is int:
            text = "a positive int" if bounds == ">= 1" else "an int" + (f" {bounds}" if bounds else "")
        elif self.kind is float:
            text = (f"a number {bounds}" if typed else bounds) if bounds else "a finite number"
        else:
            text = _alternatives([self._words(option) for option in self.options]) or bounds or "any value"
        return text + (f" or {null}" if self.optional else "")

    def violation(self, name: str, value: Any, null: str = "None") -> str | None:
        """The error message for ``value`` in field ``name``, or None when the value is accepted."""
        if value is None and self.optional:
            return None
        typed = self._has_type(value)
        if typed and isinstance(value, float) and not math.isfinite(value):
            return f"{name} must be a finite number, got {value!r}"
        if typed and self._in_range(value) and self._items_ok(value) and (not self.pairs or value in self.values):
            return None
        label = f"{name} ({self.meaning})" if self.meaning else name
        return f"{label} must be {self.expected(null, typed=not typed)}, got {value!r}"

    def coerce(self, name: str, value: Any, null: str = "null") -> Any:
        """``value`` with its type checked and converted where YAML is loose: for a float, an int or a
        number written as a string (YAML 1.1 reads ``3e-4``, without a dot, as one) becomes a float,
        which must be finite. :class:`ConfigError` naming ``name`` when no type of the field takes it;
        the choices and bounds are :meth:`violation`'s (:func:`check_section`)."""
        if self.kind is None or (value is None and self.optional):
            return value
        for option in self.options:
            if option is float and not isinstance(value, bool) and isinstance(value, (int, float, str)):
                try:
                    number = float(value)
                except ValueError:
                    continue
                if not math.isfinite(number):
                    raise ConfigError(f"{name} must be a finite number, got {number}")
                return number
            if _is_instance(value, option):
                return value
        raise ConfigError(f"{name} must be {self.expected(null, typed=True)}, got {value!r}")

    def _words(self, option: Any) -> str:
        """``"a string"``, ``"a list of strings"``, ``"a non-empty list of distinct ints"``..."""
        origin, args = typing.get_origin(option) or option, typing.get_args(option)
        if origin is not list or not (args or self.min_items or self.distinct):
            return TYPE_WORDS.get(origin, (getattr(origin, "__name__", str(origin)),))[0]
        size = {None: "", 1: "non-empty "}.get(self.min_items, f"at least {self.min_items}-item ")
        items = TYPE_WORDS.get(args[0], ("", "items"))[1] if args else "items"
        return f"a {size}list of {'distinct ' if self.distinct else ''}{items}"

    def _has_type(self, value: Any) -> bool:
        return self.kind is None or any(_is_instance(value, option) for option in self.options)

    def _items_ok(self, value: Any) -> bool:
        if not isinstance(value, list):
            return True
        distinct = not self.distinct or len({repr(item) for item in value}) == len(value)
        return distinct and len(value) >= (self.min_items or 0)

    def _in_range(self, value: Any) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return True
        checks = (
            (self.ge, lambda b: value >= b),
            (self.gt, lambda b: value > b),
            (self.le, lambda b: value <= b),
            (self.lt, lambda b: value < b),
        )
        return all(bound is None or check(bound) for bound, check in checks)

    def _bounds(self) -> str:
        """``"> 0"``, ``">= 1"``, ``"in [0, 1)"``..., or ``""`` without bounds."""
        low = f"[{_number(self.ge)}" if self.ge is not None else f"({_number(self.gt)}" if self.gt is not None else ""
        high = f"{_number(self.le)}]" if self.le is not None else f"{_number(self.lt)})" if self.lt is not None else ""
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
        return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}" if high else ""


def _number(bound: float) -> str:
    """A bound as written: an int in full (``4294967296``), a float short (``0.0001``, ``1e+10``)."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _alternatives(items: list[str]) -> str:
    return " or ".join(items) if len(items) <= 2 else "one of " + ", ".join(items)


def _as_pairs(choices: dict | tuple) -> tuple[tuple[Any, str], ...]:
    return tuple(choices.items()) if isinstance(choices, dict) else tuple((value, "") for value in choices)


def _is_union(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def _is_instance(value: Any, option: Any) -> bool:
    """Whether ``value`` has the plain type ``option`` (a bool is no number; a ``list[X]``'s items are X)."""
    if option is Any:
        return True
    origin = typing.get_origin(option) or option
    if origin is bool or isinstance(value, bool):
        return origin is bool and isinstance(value, bool)
    if not isinstance(value, (int, float) if origin is float else origin):
        return False
    args = typing.get_args(option)
    return not (origin is list and args) or all(_is_instance(item, args[0]) for item in value)


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    choices: dict[Any, str] | tuple | Callable[[], dict | tuple] = (),
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_items: int | None = None,
    distinct: bool = False,
    meaning: str = "",
) -> Any:
    """A dataclass field with its default and what it accepts besides its annotated type.

    Args:
        default / default_factory: as for :func:`dataclasses.field` (give one).
        choices: the allowed values, or a dict value -> what it means (the error lists them), or a
            function returning either, called when they are first needed.
        ge, gt, le, lt: bounds (>=, >, <=, <) on a number.
        min_items, distinct: a list's least length, and whether its items must differ.
        meaning: a few words on what the field is, put after its name in the error message.
    """
    pairs = choices if callable(choices) else _as_pairs(choices)
    rule = Rule(choices=pairs, ge=ge, gt=gt, le=le, lt=lt, min_items=min_items, distinct=distinct, meaning=meaning)
    return field(default=default, default_factory=default_factory, metadata={"rule": rule})


def annotation_rule(hint: Any) -> Rule | None:
    """The :class:`Rule` of a plain annotation (its type, and whether None is allowed), else None."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    kinds = [option for option in options if option is not type(None)]
    if not kinds or not all(option is Any or (typing.get_origin(option) or option) in PLAIN_TYPES for option in kinds):
        return None
    kind = None if Any in kinds else typing.Union[tuple(kinds)]  # noqa: UP007 (a union built from its parts)
    return Rule(kind=kind, optional=len(kinds) < len(options))


def field_rules(config_cls: type) -> dict[str, Rule]:
    """Field name -> :class:`Rule` for every field of ``config_cls`` with a plain annotation, in field order.

    The rule joins the annotation's type with the bounds or choices declared by :func:`setting` on
    the field, or on the nearest base class that declared one for that name.
    """
    return dict(_rules_of(config_cls))  # a copy: the cached table stays as declared


@functools.cache
def _rules_of(config_cls: type) -> dict[str, Rule]:
    hints = typing.get_type_hints(config_cls)
    rules = {}
    for item in dataclasses.fields(config_cls):
        typed = annotation_rule(hints[item.name])
        if typed is not None:
            declared = _declared_rule(config_cls, item.name) or Rule()
            rules[item.name] = dataclasses.replace(declared, kind=typed.kind, optional=typed.optional)
    return rules


def _declared_rule(config_cls: type, name: str) -> Rule | None:
    """The rule :func:`setting` declared for field ``name`` on ``config_cls`` or its nearest base."""
    for base in config_cls.__mro__:
        declared = getattr(base, "__dataclass_fields__", {}).get(name)
        if declared is not None and "rule" in declared.metadata:
            return declared.metadata["rule"]
    return None


def validate_fields(config: Any, names: list[str] | None = None) -> None:
    """Check each field of ``config`` (or only ``names``) against its rule; ``ValueError`` naming the
    first field that fails, what it accepts, and the value given."""
    for name, rule in _rules_of(type(config)).items():
        if names is None or name in names:
            problem = rule.violation(name, getattr(config, name))
            if problem:
                raise ValueError(problem)


def build_section(cls: type, values: Any, prefix: str = "") -> Any:
    """An instance of the dataclass ``cls`` from the mapping ``values`` (a nested dataclass field built
    the same way), each value's type checked and converted by its field's :meth:`Rule.coerce`; ``prefix``
    (e.g. ``"train."``) names the keys in errors. Unknown keys are refused, listing the valid ones."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[prefix + k for k in unknown]}; valid keys here: {sorted(prefix + k for k in known)}"
        )
    hints, rules = typing.get_type_hints(cls), _rules_of(cls)
    built = {}
    for name, value in values.items():
        if dataclasses.is_dataclass(hints[name]):
            built[name] = build_section(hints[name], value, f"{prefix}{name}.")
        else:
            built[name] = rules[name].coerce(prefix + name, value) if name in rules else value
    return cls(**built)


def check_section(section: Any, prefix: str) -> None:
    """:class:`ConfigError` for the first field of ``section`` outside its rule, e.g.
    ``train.learning_rate must be >= 0, got -0.0001`` (``null`` for None, as YAML writes it)."""
    for name, rule in _rules_of(type(section)).items():
        problem = rule.violation(prefix + name, getattr(section, name), null="null")
        if problem:
            raise ConfigError(problem)
