"""The one rule system (samora.config.rules): a field's annotation and setting(...) give one Rule, which
converts YAML values, checks Python objects and builds sections from mappings, each error naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from samora.config import ConfigError, Rule, annotation_rule, build_section, check_section, setting


@dataclass
class Inner:
    size: int = setting(2, gt=0)


@dataclass
class Section:
    rate: float = setting(0.1, ge=0)
    names: str | list[str] = "all"
    seeds: list[int] = setting(default_factory=lambda: [1], min_items=1, distinct=True)
    mode: str = setting("a", choices=lambda: {"a": "first", "b": ""})  # read when first needed
    extra: dict = field(default_factory=dict)
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_yaml_values_are_converted_where_yaml_is_loose_and_refused_otherwise():
    built = build_section(Section, {"rate": "3e-4", "names": ["x"], "inner": {"size": 4}}, "s.")
    assert built.rate == 3e-4 and isinstance(built.rate, float) and built.names == ["x"] and built.inner.size == 4
    assert build_section(Section, {"rate": 1}, "s.").rate == 1.0
    for values, message in [
        ({"rate": "fast"}, "s.rate must be a number >= 0, got 'fast'"),
        ({"rate": float("nan")}, "s.rate must be a finite number, got nan"),
        ({"names": [1]}, "s.names must be a string or a list of strings, got [1]"),
        ({"limit": True}, "s.limit must be an int or null, got True"),
        ({"extra": [1]}, "s.extra must be a mapping, got [1]"),
        ({"inner": {"sise": 1}}, r"unknown key(s) ['s.inner.sise']; valid keys here: ['s.inner.size']"),
        ({"inner": 3}, "s.inner must be a mapping, got 3"),
    ]:
        with pytest.raises(ConfigError) as caught:
            build_section(Section, values, "s.")
        assert str(caught.value) == message


def test_declared_values_are_checked_with_the_key_and_what_is_accepted():
    for values, message in [
        ({"rate": -1}, "s.rate must be >= 0, got -1.0"),
        ({"seeds": []}, "s.seeds must be a non-empty list of distinct integers, got []"),
        ({"seeds": [3, 3]}, "s.seeds must be a non-empty list of distinct integers, got [3, 3]"),
        ({"mode": "c"}, "s.mode must be 'a' (first) or 'b', got 'c'"),
    ]:
        section = build_section(Section, values, "s.")  # types are right: built
        with pytest.raises(ConfigError) as caught:
            check_section(section, "s.")
        assert str(caught.value) == message
    with pytest.raises(ConfigError, match=r"^s.inner.size must be an int > 0, got 0$"):
        check_section(build_section(Section, {"inner": {"size": 0}}, "s.").inner, "s.inner.")
    check_section(build_section(Section, {"seeds": [1, 2], "mode": "b"}, "s."), "s.")


def test_a_plain_annotation_has_a_rule_and_another_has_none():
    assert annotation_rule(int | None) == Rule(kind=int, optional=True)
    assert annotation_rule(list[str]).expected() == "a list of strings"
    assert annotation_rule(Inner) is None and annotation_rule(int | Inner) is None
    assert Rule(kind=int, ge=0, lt=2**32).expected() == "an int in [0, 4294967296)"
