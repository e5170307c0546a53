"""samora: multi-task mixtures of LoRA experts (SAMoRA and its baselines) for transformers models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("samora")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"

from samora.config import AdapterConfig, MixtureConfig
from samora.inject import (
    adapter_of,
    get_model,
    print_trainable_parameters,
    trainable_parameters,
    unload,
)
from samora.methods import METHODS, NotMergeableError, get_method
from samora.methods.lora import LoRAConfig
from samora.methods.moore import MoOREConfig
from samora.methods.samora import SAMoRAConfig
from samora.methods.smora import SMoRAConfig
from samora.persistence import load_adapter, read_adapter_config, save_adapter
from samora.routing import UNSEEN_TASK

__all__ = [
    "METHODS",
    "UNSEEN_TASK",
    "AdapterConfig",
    "LoRAConfig",
    "MixtureConfig",
    "MoOREConfig",
    "NotMergeableError",
    "SAMoRAConfig",
    "SMoRAConfig",
    "__version__",
    "adapter_of",
    "get_method",
    "get_model",
    "load_adapter",
    "print_trainable_parameters",
    "read_adapter_config",
    "save_adapter",
    "trainable_parameters",
    "unload",
]
