"""The adapter methods, one module each, and their registry (:mod:`samora.methods.registry`).

Every module of this package is imported here, so a method registers itself by being a file in it
(``@register(<Name>Config)`` on its layer class): there is no list of methods to extend.
"""

from __future__ import annotations

import importlib
import pkgutil

from samora.methods.base import AdapterLayer, NotMergeableError
from samora.methods.registry import METHODS, config_from_dict, get_method, public_configs, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "METHODS",
    "AdapterLayer",
    "NotMergeableError",
    "config_from_dict",
    "get_method",
    "public_configs",
    "register",
]
