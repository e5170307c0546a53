"""The registry: method name -> (config class, layer class), filled by :func:`register`.

A method registers itself where it is defined, on its layer class::

    @register(LoRAConfig)
    class LoRALayer(AdapterLayer): ...

and :mod:`samora.methods` imports every module of its package, so a new file there is the only
place a method is listed: ``get_model``, ``load_adapter``, the CLI, ``samora.<Name>Config``, the
generated ``docs/methods.md`` and the contract suite all read this table.
"""

from __future__ import annotations

from typing import Any

from samora.config import AdapterConfig
from samora.methods.base import AdapterLayer

METHODS: dict[str, tuple[type[AdapterConfig], type[AdapterLayer]]] = {}


def register(config_cls: type[AdapterConfig], layer_cls: type[AdapterLayer] | None = None):
    """Make a method selectable by ``config_cls.method``.

    As a decorator on the layer class (``@register(LoRAConfig)``) it returns the class unchanged;
    ``register(config_cls, layer_cls)`` registers the pair directly. A second, different pair under
    the same name is refused (registering the same pair again is a no-op).
    """
    if layer_cls is None:

        def decorate(layer: type[AdapterLayer]) -> type[AdapterLayer]:
            register(config_cls, layer)
            return layer

        return decorate
    if not (isinstance(config_cls, type) and issubclass(config_cls, AdapterConfig)):
        raise TypeError(f"register expects an AdapterConfig subclass, got {config_cls!r}")
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, AdapterLayer)):
        raise TypeError(f"register expects an AdapterLayer subclass for {config_cls.__name__}, got {layer_cls!r}")
    name = config_cls.method
    if not name:
        raise ValueError(f"{config_cls.__name__} must set a class attribute 'method'")
    registered = METHODS.get(name)
    if registered is not None and registered != (config_cls, layer_cls):
        raise ValueError(
            f"method {name!r} is already registered by {registered[0].__name__} and "
            f"{registered[1].__name__}; give {config_cls.__name__} another 'method' name"
        )
    METHODS[name] = (config_cls, layer_cls)
    return None


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


def public_configs() -> dict[str, type[AdapterConfig]]:
    """Class name -> config class of every registered method (``{"LoRAConfig": LoRAConfig, ...}``):
    what ``samora`` exports as ``samora.LoRAConfig`` and so on."""
    return {config_cls.__name__: config_cls for config_cls, _ in METHODS.values()}
