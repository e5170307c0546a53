"""Adapter-only checkpoints for the Trainer: load one in place, find the last complete one."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from samora.inject import adapter_of
from samora.persistence import WEIGHTS_NAME, _sha256, adapter_state_dict, read_adapter_config

TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def load_adapter_weights(model: nn.Module, directory: str | os.PathLike) -> None:
    """Copy the adapter weights saved in ``directory`` into the adapted ``model``, in place.

    Unlike :func:`samora.load_adapter` (which adapts a fresh base), this keeps the model's existing
    parameters, so an optimizer built on them stays valid. The saved method and task names must match.
    """
    handle = adapter_of(model)
    metadata = read_adapter_config(directory)
    saved = (metadata.get("method"), metadata.get("tasks"))
    if saved != (handle.config.method, handle.config.tasks):
        raise ValueError(
            f"checkpoint {directory} holds a '{saved[0]}' adapter for tasks {saved[1]}, but the model has a "
            f"'{handle.config.method}' adapter for tasks {handle.config.tasks}; resume with the same config"
        )
    weights = Path(directory) / WEIGHTS_NAME
    if not weights.is_file() or _sha256(weights) != metadata.get("weights_sha256"):
        raise ValueError(f"{weights} is missing or does not match its checksum; the checkpoint is damaged")
    tensors = load_file(str(weights))
    own = adapter_state_dict(model)
    wrong = sorted(k for k in own if k not in tensors or tensors[k].shape != own[k].shape)
    unexpected = sorted(set(tensors) - set(own))
    if wrong or unexpected:
        raise ValueError(
            f"checkpoint {directory} does not fit this adapter: missing or reshaped {wrong[:5]}, unexpected "
            f"{unexpected[:5]}; resume with the config the checkpoint was trained with"
        )
    with torch.no_grad():
        for key, tensor in own.items():
            tensor.copy_(tensors[key])


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The highest-numbered ``checkpoint-N`` folder whose ``trainer_state.json`` (written last) parses.

    The Trainer's own ``get_last_checkpoint`` takes the highest number even when that folder was left
    half-written by a crash or a full disk; resuming from it would then fail.
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in folder.iterdir()
                    if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
    for _, path in found:
        try:
            json.loads((path / TRAINER_STATE).read_text())
        except (OSError, ValueError):
            continue
        return str(path)
    return None
