"""Save and load adapters: ``adapter_model.safetensors`` + ``adapter_config.json``.

Only the adapter's tensors are written, never the frozen base. The config records the weights'
SHA-256 and a ``format_version`` that loading checks, so a truncated, altered or mismatched file, or
a file from a newer samora, is refused with a clear error instead of loading wrong numbers.

One atomic save. The folder may hold other files (a Trainer checkpoint's optimizer state, a run's
report), so the folder itself is never swapped; the two adapter files are committed together:

1. stage: write both files into a fresh hidden folder ``.samora-staging-XXXX`` inside the target
   and fsync them;
2. commit: rename that folder to ``.samora-pending`` (one atomic rename: the commit point);
3. install: move each file from ``.samora-pending/`` over its name in the target (``os.replace``),
   then remove the empty ``.samora-pending``.

Readers take each file from ``.samora-pending/`` while it is there, else from the target. Before the
commit they see the old pair (a staging folder is ignored); from the commit on, each file of the new
pair is either still pending or already moved out, so they see the new pair. At no instant is
neither pair complete, wherever the saving process is killed. A later save first finishes a pending
install left by a killed one and removes abandoned staging folders. One folder has one writer at a
time: each save holds an exclusive lock on the folder (``fcntl.flock``), so concurrent saves, such as
every rank of a data-parallel script saving, take turns.

Loading checks everything it can before touching the model and removes the adapter again if
anything fails, so a failed load leaves the base model as it was.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from samora.adapter_files import (
    CONFIG_NAME,
    FORMAT,
    FORMAT_VERSION,
    PENDING,
    STAGING_PREFIX,
    WEIGHTS_NAME,
    adapter_state_dict,
    copy_tensors,
    install_adapter,
    read_adapter_tensors,
    sha256,
)
from samora.cache import base_model_identity
from samora.files import match_umask
from samora.inject import adapter_of, find_targets
from samora.methods import config_from_dict
from samora.methods.base import linear_shape
from samora.peft_format import NOT_PEFT_TYPE, is_peft_folder, load_peft_lora
from samora.version import __version__

logger = logging.getLogger(__name__)


def save_adapter(model: nn.Module, directory: str | os.PathLike, *, state_dict: dict | None = None) -> Path:
    """Write the adapter of ``model`` to ``directory`` (created if needed); return the folder.

    ``state_dict``: a full state dict of ``model`` (keys as in ``model.state_dict()``) to take the
    adapter's tensors from instead of the model's own, as with PEFT's ``save_pretrained``. Under
    FSDP or DeepSpeed ZeRO-3 the model's own tensors are this rank's shards; the Trainer gathers the
    full state dict and passes it here.
    """
    handle = adapter_of(model)
    directory = Path(directory)
    tensors = adapter_state_dict(model)
    if state_dict is not None:
        tensors = _gathered_adapter_tensors(handle, tensors, state_dict)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata = _metadata(handle, tensors, getattr(model, "name_or_path", None))
    metadata["base_model_quantization"] = _quantization_config(model)
    directory.mkdir(parents=True, exist_ok=True)
    with _one_writer(directory):
        _prepare_folder(directory)
        _stage_and_commit(directory, tensors, metadata)
        _install_pending(directory)
    return directory


def _stage_and_commit(directory: Path, tensors: dict[str, torch.Tensor], metadata: dict) -> None:
    """Steps 1 and 2 of a save: write and fsync both files in a staging folder, rename it to pending."""
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=directory))
    try:
        save_file(tensors, str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        metadata["weights_sha256"] = sha256(staging / WEIGHTS_NAME)
        (staging / CONFIG_NAME).write_text(json.dumps(metadata, indent=2) + "\n")
        match_umask(staging / WEIGHTS_NAME)  # save_file writes 0o600; the user's umask decides
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            _fsync(staging / name)
        _fsync_folder(staging)
        os.rename(staging, directory / PENDING)  # the commit point
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _fsync_folder(directory)


@contextmanager
def _one_writer(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on the folder itself for the whole save, waiting for it if taken.

    Saves into one folder then take turns, so every rank of a data-parallel script may call
    :func:`save_adapter` (as with PEFT's ``save_pretrained``) without one removing another's staging
    folder as abandoned. The lock leaves no file behind and dies with its process. Without ``fcntl``
    (Windows), or on a file system that refuses locks (some cluster file systems), there is no lock:
    one writer per folder is then the caller's to keep, as before.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    handle = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as err:
            logger.warning("cannot lock %s (%s): concurrent saves into it are not serialised", directory, err)
        yield
    finally:
        os.close(handle)  # closing the descriptor releases the lock


def _metadata(handle, tensors: dict[str, torch.Tensor], name_or_path: str | None) -> dict:
    """What ``adapter_config.json`` holds, except the weights' checksum (added once they are written).

    ``base_model`` (and PEFT's ``base_model_name_or_path``) is the base's name (see
    :func:`samora.cache.base_model_identity`); ``base_model_path`` is where it was loaded from on the
    machine that saved the adapter (informational: loading goes by the name).
    """
    dtypes = {str(v.dtype).removeprefix("torch.") for v in tensors.values()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "peft_type": NOT_PEFT_TYPE,  # what PEFT and transformers read: they fail naming samora
        "base_model_name_or_path": handle.config.base_model,
        "samora_version": __version__,
        "method": handle.config.method,
        "base_model": handle.config.base_model,
        "base_model_path": base_model_identity(name_or_path)[1],
        "tasks": handle.config.tasks,
        "target_modules": handle.config.target_modules,
        "config": handle.config.to_dict(),
        "adapter_dtype": sorted(dtypes)[0] if len(dtypes) == 1 else "float32",
        "modules": {name: [layer.in_features, layer.out_features] for name, layer in handle.layers.items()},
    }


def _quantization_config(model: nn.Module) -> dict | None:
    """The base's quantization (transformers' ``config.quantization_config``, e.g. a ``BitsAndBytesConfig``)
    as a dict, so that the adapter is loaded onto the same quantized base; None for a plain base."""
    quantization = getattr(getattr(model, "config", None), "quantization_config", None)
    return quantization.to_dict() if hasattr(quantization, "to_dict") else quantization


def _gathered_adapter_tensors(handle, own: dict[str, torch.Tensor], state_dict: dict) -> dict[str, torch.Tensor]:
    """The adapter's entries of a gathered ``state_dict``, checked complete and full-sized."""
    missing = sorted(set(own) - set(state_dict))
    if missing:
        raise ValueError(
            f"the state dict passed to save_adapter lacks {len(missing)} adapter tensors "
            f"(first: {missing[0]}); pass the model's full state dict (model.state_dict(), or "
            "accelerator.get_state_dict(model) under FSDP / DeepSpeed)"
        )
    for key in own:
        got, expected = tuple(state_dict[key].shape), handle.tensor_shapes[key]
        if got != expected:
            raise ValueError(
                f"{key} in the state dict passed to save_adapter has shape {got}, expected "
                f"{expected}: it is a shard, not the gathered tensor"
            )
    return {key: state_dict[key] for key in own}


def load_adapter(base_model: nn.Module, directory: str | os.PathLike, *, is_trainable: bool = False) -> nn.Module:
    """Adapt a fresh ``base_model`` with the adapter saved in ``directory``; return the model.

    As in PEFT, the loaded adapter is frozen unless ``is_trainable=True`` (to continue training).
    Any error (missing or corrupted file, unknown method, a base whose layer shapes differ) leaves
    ``base_model`` unchanged. A PEFT LoRA folder loads as a samora LoRA (:func:`samora.peft_format.load_peft_lora`);
    a ``samora train`` run folder loads its ``adapter/``, as every ``samora`` command accepts it.
    """
    directory = _adapter_of_run_folder(directory)
    if is_peft_folder(directory):
        return load_peft_lora(base_model, directory, is_trainable=is_trainable)
    metadata, tensors = read_adapter_tensors(directory)
    config = config_from_dict(metadata["config"])
    _check_shapes(base_model, config.target_modules, metadata.get("modules", {}), metadata.get("base_model"))
    dtype = getattr(torch, metadata.get("adapter_dtype", "float32"))
    install_adapter(base_model, config, tensors, dtype=dtype, source=str(directory), is_trainable=is_trainable)
    return base_model


def _adapter_of_run_folder(directory: str | os.PathLike) -> str | os.PathLike:
    """``directory/adapter`` when ``directory`` is a run folder (it has no adapter of its own), else it."""
    inner = Path(directory) / "adapter"
    if not (Path(directory) / CONFIG_NAME).exists() and (inner / CONFIG_NAME).is_file():
        return inner
    return directory


def load_adapter_weights(model: nn.Module, directory: str | os.PathLike) -> None:
    """Copy the adapter weights saved in ``directory`` into the already adapted ``model``, in place.

    Unlike :func:`load_adapter` (which adapts a fresh base), this keeps the model's parameters, so an
    optimizer built on them stays valid (resuming a Trainer checkpoint). Method and tasks must match.
    """
    handle = adapter_of(model)
    metadata, tensors = read_adapter_tensors(directory)
    saved = (metadata.get("method"), metadata.get("tasks"))
    if saved != (handle.config.method, handle.config.tasks):
        raise ValueError(
            f"{directory} holds a '{saved[0]}' adapter for tasks {saved[1]}, but the model has a "
            f"'{handle.config.method}' adapter for tasks {handle.config.tasks}; use the same config"
        )
    copy_tensors(model, tensors, str(directory))


def _check_shapes(model: nn.Module, target, saved: dict, base_name: str | None) -> None:
    try:
        found = find_targets(model, target)
    except ValueError as err:
        raise ValueError(f"this adapter was made for base model {base_name!r} and does not fit: {err}") from None
    here = {name: list(linear_shape(module)[:2]) for name, module in found.items()}
    problems = [
        f"{name}: saved (in, out) {shape}, this model {here.get(name, 'missing')}"
        for name, shape in saved.items()
        if here.get(name) != shape
    ]
    problems += [f"{name}: in this model but not in the adapter" for name in here if name not in saved]
    if problems:
        raise ValueError(
            f"this adapter was made for base model {base_name!r} and its layers do not match this model: "
            + "; ".join(problems[:6])
            + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else "")
        )


def _prepare_folder(directory: Path) -> None:
    """Finish installing a save a killed process had committed; drop its abandoned staging folders."""
    _install_pending(directory)
    for leftover in directory.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _install_pending(directory: Path) -> None:
    """Step 3 of a save: move the committed files over their names, then remove the pending folder."""
    pending = directory / PENDING
    if not pending.is_dir():
        return
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if (pending / name).is_file():
            os.replace(pending / name, directory / name)
    pending.rmdir()
    _fsync_folder(directory)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def _fsync_folder(path: Path) -> None:
    """Make renames inside ``path`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
