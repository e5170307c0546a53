"""YAML values checked against the run configuration's annotations, with errors that name the key.

:func:`build_section` builds a section dataclass from a mapping (unknown keys refused, listing the
valid ones); :func:`coerce_value` checks one value against a plain annotation (``int``, ``float``,
``str``, ``bool``, ``list``, ``dict``, unions, ``None``). Both raise :class:`ConfigError`. Used by
:mod:`samora.run.run_config` for every section and by :mod:`samora.run.passthrough` for the
``TrainingArguments`` fields it hands on.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A run configuration key or value is invalid; the message names the key."""


def build_section(cls: type, values: Any, prefix: str):
    """An instance of the dataclass ``cls`` from the mapping ``values`` (nested dataclass fields
    built the same way), every value coerced by :func:`coerce_value`; ``prefix`` (e.g. ``"train."``)
    names the keys in errors."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[prefix + k for k in unknown]}; valid keys here: {sorted(prefix + k for k in known)}"
        )
    built = {}
    for name, value in values.items():
        hint, key = hints[name], prefix + name
        if dataclasses.is_dataclass(hint):
            built[name] = build_section(hint, value, key + ".")
        else:
            built[name] = coerce_value(value, hint, key)
    return cls(**built)


def coerce_value(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the annotation ``hint`` and returned, converted where YAML is loose:
    an ``int`` or a numeric string (YAML 1.1 reads ``3e-4`` as a string) for a ``float`` becomes a
    float, which must be finite. A ``bool`` is never an ``int``. Anything else that does not match
    raises :class:`ConfigError` naming ``key`` and the expected type(s)."""
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    for option in options:
        if option is type(None) and value is None:
            return None
        origin = typing.get_origin(option) or option
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return _finite(float(value), key)
        if origin is float and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return _finite(float(value), key)
            except ValueError:
                pass
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin in (str, bool, list, dict) and isinstance(value, origin):
            return value
    expected = " or ".join(getattr(o, "__name__", str(o)) for o in options).replace("NoneType", "null")
    raise ConfigError(f"{key} must be {expected}, got {value!r}")


def _finite(value: float, key: str) -> float:
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value}")
    return value
