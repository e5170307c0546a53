"""A saved samora adapter's two files: their names, reading them with every check, installing their tensors.

``adapter_config.json`` (the config, the modules' shapes, the weights' SHA-256 and a ``format_version``)
and ``adapter_model.safetensors`` (the adapter's tensors only). Writing them atomically is
:mod:`samora.persistence`'s; this module is what both it and :mod:`samora.peft_format` read through, below
both (a PEFT folder uses the same two file names, by PEFT's convention).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from samora.inject import adapter_of, get_model, unload
from samora.version import __version__

WEIGHTS_NAME = "adapter_model.safetensors"
CONFIG_NAME = "adapter_config.json"
FORMAT = "samora-adapter"
FORMAT_VERSION = 1
PENDING = ".samora-pending"
STAGING_PREFIX = ".samora-staging-"


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``"<module name>.<parameter>" -> tensor`` for every adapter parameter and buffer."""
    return {
        f"{name}.{key}": value.detach()
        for name, layer in adapter_of(model).layers.items()
        for key, value in layer.adapter_state().items()
    }


def read_adapter_config(directory: str | os.PathLike) -> dict:
    """The parsed ``adapter_config.json`` of a saved adapter, with clear errors."""
    path = adapter_file(directory, CONFIG_NAME)
    if not Path(directory).is_dir():
        raise FileNotFoundError(f"adapter folder {str(directory)!r} does not exist")
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: not a samora adapter folder (expected {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is corrupted (not valid JSON: {err}); re-save the adapter") from err
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or "config" not in metadata:
        raise ValueError(f"{path} is not a samora adapter config (no format '{FORMAT}')")
    _check_format_version(metadata, path)
    return metadata


def _check_format_version(metadata: dict, path: Path) -> None:
    """Refuse a config whose ``format_version`` this samora does not read, saying what to do."""
    version = metadata.get("format_version")
    if version == FORMAT_VERSION and type(version) is int:
        return
    written_by = f"samora {metadata.get('samora_version', '(unknown version)')}"
    if type(version) is int and version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version}, written by {written_by}; this samora ({__version__}) "
            f"reads format_version {FORMAT_VERSION} only. Upgrade samora (pip install -U samora) to load it"
        )
    raise ValueError(
        f"{path} has format_version {version!r} (written by {written_by}), which this samora ({__version__}) "
        f"does not read (it reads format_version {FORMAT_VERSION}); load it with the samora that wrote it "
        "and save it again with this one"
    )


def read_adapter_tensors(directory: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(metadata, tensors)`` of a saved adapter, after checking both files and the checksum."""
    directory = Path(directory)
    metadata = read_adapter_config(directory)
    weights = adapter_file(directory, WEIGHTS_NAME)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing; the adapter folder is incomplete")
    if sha256(weights) != metadata.get("weights_sha256"):
        raise ValueError(
            f"{weights} does not match the checksum in {CONFIG_NAME}: the file is corrupted or from "
            "another save; re-save the adapter"
        )
    try:
        tensors = load_file(str(weights))
    except Exception as err:  # safetensors raises several types for a damaged file
        raise ValueError(f"{weights} cannot be read ({err}); re-save the adapter") from err
    return metadata, tensors


def install_adapter(
    base_model: nn.Module,
    config,
    tensors: dict[str, torch.Tensor],
    *,
    dtype: torch.dtype,
    source: str,
    is_trainable: bool,
) -> None:
    """Adapt ``base_model`` with ``config`` (no init), copy ``tensors`` in and set their ``requires_grad``;
    on a bad tensor the base model is restored and the error raised (``source`` names the file in it)."""
    get_model(base_model, config, adapter_dtype=dtype, init_weights=False)
    try:
        copy_tensors(base_model, tensors, source)
    except Exception:
        unload(base_model)
        raise
    for layer in adapter_of(base_model).layers.values():
        for name, parameter in layer.named_parameters():
            if not name.startswith("base_layer."):
                parameter.requires_grad_(is_trainable)


def copy_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy saved tensors into the model's adapter after checking that names and shapes all match."""
    own = adapter_state_dict(model)
    wrong = sorted(k for k in own if k not in tensors or tensors[k].shape != own[k].shape)
    unexpected = sorted(set(tensors) - set(own))
    if wrong or unexpected:
        raise ValueError(
            f"{source} does not fit this adapter: missing or reshaped {wrong[:5]}, unexpected {unexpected[:5]}; "
            "use the config the adapter was trained with"
        )
    with torch.no_grad():
        for key, tensor in own.items():
            tensor.copy_(tensors[key])


def adapter_file(directory: str | os.PathLike, name: str) -> Path:
    """The current copy of ``name`` (CONFIG_NAME or WEIGHTS_NAME) in an adapter folder.

    Its pending copy while a committed save is being installed (see the module docstring), else the
    file in the folder itself.
    """
    pending = Path(directory) / PENDING / name
    return pending if pending.is_file() else Path(directory) / name


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
