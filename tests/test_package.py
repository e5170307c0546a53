"""The package root: its public names load on first use, and what type checkers see is the same list."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import samora


def test_every_public_name_resolves_to_its_modules_object():
    import importlib

    configs = {config_cls.__name__ for config_cls, _ in samora.METHODS.values()}
    assert set(samora.__all__) == {"__version__", *samora._EXPORTS, *configs}
    for name in configs:  # every registered method's config, from the registry
        assert getattr(samora, name).method in samora.METHODS and name in dir(samora)
    for name, module in samora._EXPORTS.items():
        assert getattr(samora, name) is getattr(importlib.import_module(module), name), name
    assert set(samora._EXPORTS) <= set(dir(samora))


def test_type_checkers_see_the_same_names():
    tree = ast.parse(Path(samora.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen = {alias.name: node.module for node in block.body for alias in node.names}
    assert seen == samora._EXPORTS


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        samora.no_such_thing  # noqa: B018
