"""samora: multi-task mixtures of LoRA experts (SAMoRA and its baselines) for transformers models.

The public names below are imported on first use (PEP 562 ``__getattr__``): ``import samora`` and
the ``samora`` command's ``--help`` / ``--version`` do not import torch or transformers.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

try:
    __version__ = version("samora")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"

#: public name -> the module that defines it
_EXPORTS = {
    "adapter_parameter_count": "samora.accounting", "match_parameter_budget": "samora.accounting",
    "module_parameter_count": "samora.accounting",
    "AdapterConfig": "samora.config", "MethodCard": "samora.config", "MixtureConfig": "samora.config",
    "adapter_of": "samora.inject", "get_model": "samora.inject", "print_trainable_parameters": "samora.inject",
    "trainable_parameters": "samora.inject", "unload": "samora.inject",
    "merge": "samora.merging", "merge_for_task": "samora.merging",
    "METHODS": "samora.methods", "NotMergeableError": "samora.methods", "get_method": "samora.methods",
    "HydraLoRAConfig": "samora.methods.hydralora", "LoRAConfig": "samora.methods.lora",
    "MoELoRAConfig": "samora.methods.moelora", "MoOREConfig": "samora.methods.moore",
    "MTLLoRAConfig": "samora.methods.mtllora", "MultiLoRAConfig": "samora.methods.multilora",
    "SAMoRAConfig": "samora.methods.samora", "SMoRAConfig": "samora.methods.smora",
    "export_peft": "samora.peft_format", "load_peft_lora": "samora.peft_format",
    "load_adapter": "samora.persistence", "read_adapter_config": "samora.persistence",
    "save_adapter": "samora.persistence",
    "UNSEEN_TASK": "samora.routing",
}

__all__ = [
    "METHODS", "UNSEEN_TASK", "AdapterConfig", "HydraLoRAConfig", "LoRAConfig", "MTLLoRAConfig", "MethodCard",
    "MixtureConfig", "MoELoRAConfig", "MoOREConfig", "MultiLoRAConfig", "NotMergeableError", "SAMoRAConfig",
    "SMoRAConfig", "__version__", "adapter_of", "adapter_parameter_count", "export_peft", "get_method", "get_model",
    "load_adapter", "load_peft_lora", "match_parameter_budget", "merge", "merge_for_task", "module_parameter_count",
    "print_trainable_parameters", "read_adapter_config", "save_adapter", "trainable_parameters", "unload",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'samora' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what type checkers and IDEs see; tests/test_package.py checks it matches _EXPORTS
    from samora.accounting import adapter_parameter_count, match_parameter_budget, module_parameter_count
    from samora.config import AdapterConfig, MethodCard, MixtureConfig
    from samora.inject import adapter_of, get_model, print_trainable_parameters, trainable_parameters, unload
    from samora.merging import merge, merge_for_task
    from samora.methods import METHODS, NotMergeableError, get_method
    from samora.methods.hydralora import HydraLoRAConfig
    from samora.methods.lora import LoRAConfig
    from samora.methods.moelora import MoELoRAConfig
    from samora.methods.moore import MoOREConfig
    from samora.methods.mtllora import MTLLoRAConfig
    from samora.methods.multilora import MultiLoRAConfig
    from samora.methods.samora import SAMoRAConfig
    from samora.methods.smora import SMoRAConfig
    from samora.peft_format import export_peft, load_peft_lora
    from samora.persistence import load_adapter, read_adapter_config, save_adapter
    from samora.routing import UNSEEN_TASK
