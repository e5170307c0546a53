"""samora: multi-task mixtures of LoRA experts (SAMoRA and its baselines) for transformers models."""

from samora.version import __version__

from samora.accounting import adapter_parameter_count, match_parameter_budget, module_parameter_count
from samora.config import AdapterConfig, MethodCard, MixtureConfig, ScaledConfig
from samora.inject import (
    adapter_of,
    get_model,
    print_trainable_parameters,
    trainable_parameters,
    unload,
)
from samora.merging import merge, merge_for_task
from samora.methods import METHODS, NotMergeableError, get_method, public_configs
from samora.peft_format import export_peft, load_peft_lora
from samora.persistence import load_adapter, read_adapter_config, save_adapter
from samora.routing import UNSEEN_TASK

# Every registered method's config class, by its class name (samora.LoRAConfig, samora.SAMoRAConfig...):
# read from the registry, so a new method file is exported without an edit here.
_METHOD_CONFIGS = public_configs()
globals().update(_METHOD_CONFIGS)

__all__ = [
    "AdapterConfig",
    "METHODS",
    "MethodCard",
    "MixtureConfig",
    "NotMergeableError",
    "ScaledConfig",
    "UNSEEN_TASK",
    "__version__",
    "adapter_of",
    "adapter_parameter_count",
    "export_peft",
    "get_method",
    "get_model",
    "load_adapter",
    "load_peft_lora",
    "match_parameter_budget",
    "merge",
    "merge_for_task",
    "module_parameter_count",
    "print_trainable_parameters",
    "read_adapter_config",
    "save_adapter",
    "trainable_parameters",
    "unload",
    *sorted(_METHOD_CONFIGS),
]
