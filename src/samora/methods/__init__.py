"""Registry: method name -> (config class, layer class).

Each method lives in one module of this package; registering it here makes it selectable by name
everywhere (``get_model``, ``load_adapter``, the CLI).
"""

from __future__ import annotations

from typing import Any

from samora.config import AdapterConfig
from samora.methods.base import AdapterLayer, NotMergeableError
from samora.methods.hydralora import HydraLoRAConfig, HydraLoRALayer
from samora.methods.lora import LoRAConfig, LoRALayer
from samora.methods.moelora import MoELoRAConfig, MoELoRALayer
from samora.methods.moore import MoOREConfig, MoORELayer
from samora.methods.mtllora import MTLLoRAConfig, MTLLoRALayer
from samora.methods.multilora import MultiLoRAConfig, MultiLoRALayer
from samora.methods.samora import SAMoRAConfig, SAMoRALayer
from samora.methods.smora import SMoRAConfig, SMoRALayer

METHODS: dict[str, tuple[type[AdapterConfig], type[AdapterLayer]]] = {}


def register(config_cls: type[AdapterConfig], layer_cls: type[AdapterLayer]) -> None:
    """Make a method selectable by ``config_cls.method``."""
    if not config_cls.method:
        raise ValueError(f"{config_cls.__name__} must set a class attribute 'method'")
    METHODS[config_cls.method] = (config_cls, layer_cls)


def get_method(name: str) -> tuple[type[AdapterConfig], type[AdapterLayer]]:
    """The (config class, layer class) registered under ``name``; a clear error for unknown names."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {sorted(METHODS)}") from None


def config_from_dict(values: dict[str, Any]) -> AdapterConfig:
    """Rebuild a config from ``AdapterConfig.to_dict()`` output (the ``method`` key picks the class)."""
    if "method" not in values:
        raise ValueError(f"adapter config has no 'method' key; known methods: {sorted(METHODS)}")
    config_cls, _ = get_method(values["method"])
    return config_cls.from_dict(values)


for _config, _layer in [
    (LoRAConfig, LoRALayer),
    (SAMoRAConfig, SAMoRALayer),
    (HydraLoRAConfig, HydraLoRALayer),
    (MTLLoRAConfig, MTLLoRALayer),
    (MoELoRAConfig, MoELoRALayer),
    (MultiLoRAConfig, MultiLoRALayer),
    (SMoRAConfig, SMoRALayer),
    (MoOREConfig, MoORELayer),
]:
    register(_config, _layer)

__all__ = ["METHODS", "AdapterLayer", "NotMergeableError", "config_from_dict", "get_method", "register"]
