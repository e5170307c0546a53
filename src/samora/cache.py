"""Where samora keeps what it builds once and reuses, and the name a model folder is known by.

The offline SmolLM2 is converted into ``<cache>/smollm2-135m-instruct-transformers-<version>/``
(:mod:`samora.models.smollm2`): a machine-local path. Adapters record the model's *name* instead
(:func:`base_model_identity`), so an adapter saved on one machine names a base that loads on another.
"""

from __future__ import annotations

import os
from pathlib import Path

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model SMOLLM2_NAME stands for (what PEFT can load)
CONVERTED_PREFIX = f"{SMOLLM2_NAME}-transformers-"  # + the transformers version that converted it


def default_cache_dir() -> Path:
    """``$SAMORA_CACHE``, else ``$XDG_CACHE_HOME/samora``, else ``~/.cache/samora``."""
    if os.environ.get("SAMORA_CACHE"):
        return Path(os.environ["SAMORA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "samora"


def bundled_model_name(name_or_path: str | os.PathLike | None) -> str | None:
    """``smollm2-135m-instruct`` for a folder that :func:`samora.models.smollm2.smollm2_path` converted (on any
    machine, by any transformers version: what adapters saved before they recorded the name); else None."""
    if name_or_path and Path(name_or_path).name.startswith(CONVERTED_PREFIX):
        return SMOLLM2_NAME
    return None


def base_model_identity(name_or_path: str | os.PathLike | None) -> tuple[str | None, str | None]:
    """``(name, local path)`` of a model's ``name_or_path``, as an adapter records them.

    The name is what loads the model again anywhere: the hub id, or ``smollm2-135m-instruct`` for the
    bundled model, whose converted folder is a machine-local cache path; a local folder is named by
    its path as given. The path is the folder's absolute path on this machine (None for a hub id).
    """
    if not name_or_path:
        return None, None
    local = Path(name_or_path).is_dir()
    path = str(Path(name_or_path).resolve()) if local else None
    return bundled_model_name(name_or_path) or str(name_or_path), path


def loadable_base_name(base_model: str | None) -> str | None:
    """``base_model`` as another library (PEFT's ``AutoPeftModelForCausalLM``) can load it: the hub id
    the bundled alias stands for, a local folder's absolute path, else the name unchanged."""
    if base_model and (base_model == SMOLLM2_NAME or bundled_model_name(base_model)):
        return SMOLLM2_HUB_ID
    if base_model and Path(base_model).is_dir():
        return str(Path(base_model).resolve())
    return base_model
