"""The method registry: one registration per method, on its layer class, read by everything else."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import samora
import samora.methods
from samora.methods import AdapterLayer, registry
from samora.methods.lora import LoRALayer


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry that the test may extend; the real one is restored afterwards."""
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    return registry.METHODS


@dataclasses.dataclass
class ScratchConfig(samora.LoRAConfig):
    method = "scratch"


def test_every_method_module_registers_its_pair():
    """Each module of samora.methods, except the machinery, registers one method: its config and layer."""
    machinery = {"__init__", "base", "registry", "singular_values", "quantized"}
    package = Path(samora.methods.__file__).parent
    method_modules = {f"samora.methods.{path.stem}" for path in package.glob("*.py") if path.stem not in machinery}
    assert sorted(layer_cls.__module__ for _, layer_cls in samora.METHODS.values()) == sorted(method_modules)
    for name, (config_cls, layer_cls) in samora.METHODS.items():
        assert config_cls.method == name and issubclass(layer_cls, AdapterLayer)
        assert config_cls.__module__ == layer_cls.__module__  # config and layer live in one file


def test_public_configs_are_the_registered_classes():
    for config_cls, _ in samora.METHODS.values():
        assert getattr(samora, config_cls.__name__) is config_cls
        assert config_cls.__name__ in samora.__all__
    assert samora.SAMoRAConfig is samora.METHODS["samora"][0]


def test_decorator_registers_and_returns_the_class(scratch_registry):
    @registry.register(ScratchConfig)
    class ScratchLayer(LoRALayer):
        pass

    assert scratch_registry["scratch"] == (ScratchConfig, ScratchLayer) and ScratchLayer.__name__ == "ScratchLayer"
    assert registry.get_method("scratch") == (ScratchConfig, ScratchLayer)
    registry.register(ScratchConfig, ScratchLayer)  # the same pair again: a no-op
    assert registry.config_from_dict({"method": "scratch", "r": 2}) == ScratchConfig(r=2)


def test_a_second_pair_under_one_name_is_refused(scratch_registry):
    with pytest.raises(ValueError, match="method 'lora' is already registered by LoRAConfig and LoRALayer"):

        @registry.register(samora.LoRAConfig)
        class OtherLayer(LoRALayer):
            pass

    assert scratch_registry["lora"] == (samora.LoRAConfig, LoRALayer)


def test_register_refuses_what_is_not_a_method(scratch_registry):
    with pytest.raises(ValueError, match="must set a class attribute 'method'"):
        registry.register(samora.ScaledConfig, LoRALayer)
    with pytest.raises(TypeError, match="AdapterLayer subclass for ScratchConfig"):
        registry.register(ScratchConfig, object)
    with pytest.raises(TypeError, match="AdapterConfig subclass"):
        registry.register(dict, LoRALayer)
    with pytest.raises(ValueError, match=re.escape(f"unknown method 'nope'; known methods: {sorted(samora.METHODS)}")):
        registry.get_method("nope")


def test_every_method_has_its_own_golden_test_file():
    """tests/methods/test_<method>.py holds each method's float64 golden test (see CONTRIBUTING.md)."""
    here = Path(__file__).parent
    assert [name for name in samora.METHODS if not (here / f"test_{name}.py").is_file()] == []
