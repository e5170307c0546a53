"""samora: multi-task mixtures of LoRA experts (SAMoRA and its baselines) for transformers models.

The public names below are imported on first use (PEP 562 ``__getattr__``): ``import samora`` and
the ``samora`` command's ``--help`` / ``--version`` do not import torch or transformers. The method
configs (``samora.LoRAConfig``, ``samora.SAMoRAConfig``...) come from the method registry
(:func:`samora.methods.public_configs`), so a new method file is exported without an edit here.

Two floors: the adapter library is the modules at this package's top and ``samora.methods``; the
research harness is the ``samora`` command (``samora.cli``) over the ``compare``, ``benchmark``,
``serve``, ``run``, ``training``, ``analysis``, ``evaluation``, ``data`` and ``models`` subpackages.
The library never imports the harness (``[tool.importlinter]`` in ``pyproject.toml``; see
CONTRIBUTING.md).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from samora.version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "adapter_parameter_count": "samora.accounting",
    "match_parameter_budget": "samora.accounting",
    "module_parameter_count": "samora.accounting",
    "AdapterConfig": "samora.config",
    "MethodCard": "samora.config",
    "MixtureConfig": "samora.config",
    "ScaledConfig": "samora.config",
    "adapter_of": "samora.inject",
    "get_model": "samora.inject",
    "print_trainable_parameters": "samora.inject",
    "trainable_parameters": "samora.inject",
    "unload": "samora.inject",
    "merge": "samora.merging",
    "merge_for_task": "samora.merging",
    "METHODS": "samora.methods",
    "NotMergeableError": "samora.methods",
    "get_method": "samora.methods",
    "export_peft": "samora.peft_format",
    "load_peft_lora": "samora.peft_format",
    "load_adapter": "samora.persistence",
    "read_adapter_config": "samora.adapter_files",
    "save_adapter": "samora.persistence",
    "UNSEEN_TASK": "samora.routing",
}


def __getattr__(name: str):
    if name == "__all__":  # for ``from samora import *``: the names above and every method's config
        return ["__version__", *_EXPORTS, *sorted(_method_configs())]
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(import_module(module), name)
    elif name.endswith("Config") and name in _method_configs():
        value = _method_configs()[name]
    else:
        raise AttributeError(f"module 'samora' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_method_configs()})


def _method_configs() -> dict[str, type]:
    """Every registered method's config class by its class name (imports the methods: torch)."""
    return import_module("samora.methods").public_configs()


if TYPE_CHECKING:  # what type checkers and IDEs see (tests/test_package.py checks it matches _EXPORTS); the
    # method configs are registry entries: import them from their modules for static checking
    from samora.accounting import adapter_parameter_count, match_parameter_budget, module_parameter_count
    from samora.adapter_files import read_adapter_config
    from samora.config import AdapterConfig, MethodCard, MixtureConfig, ScaledConfig
    from samora.inject import adapter_of, get_model, print_trainable_parameters, trainable_parameters, unload
    from samora.merging import merge, merge_for_task
    from samora.methods import METHODS, NotMergeableError, get_method
    from samora.peft_format import export_peft, load_peft_lora
    from samora.persistence import load_adapter, save_adapter
    from samora.routing import UNSEEN_TASK
