"""Export samora adapters as PEFT LoRA folders, and load PEFT LoRA folders as samora LoRAs.

A PEFT LoRA folder is ``adapter_config.json`` (``peft_type: "LORA"``, ``r``, ``lora_alpha``,
``target_modules``, ``base_model_name_or_path``) plus ``adapter_model.safetensors`` with, per adapted
module, ``base_model.model.<module>.lora_A.weight`` (R, d_in) and ``...lora_B.weight`` (d_out, R).
PEFT computes ``W x + (lora_alpha / R) B A x``; PEFT, transformers' ``load_adapter`` and vLLM's
LoRA serving all read it.

Which samora adapters are exactly one such LoRA (``scale * B A`` equals the layer's ``delta_weight``;
each gives its factors through the layer hook ``AdapterLayer.lora_factors``):

=========  ===========================================================  ========  ============
method     factors (B: d_out x R, A: R x d_in, scale)                    rank R    lora_alpha
=========  ===========================================================  ========  ============
lora       B, A, alpha / r                                              r         alpha
multilora  [diag(s_1) B_1 ... diag(s_n) B_n], [A_1; ...; A_n], alpha/r  n r       n alpha
moelora    [w_1(t) B_1 ... w_E(t) B_E], [A_1; ...; A_E], alpha / r      r         alpha
mtllora    (sum_i p_ti B_i) Lambda_t, A, alpha / r                      r         alpha
=========  ===========================================================  ========  ============

``lora_alpha = scale * R`` keeps PEFT's ``lora_alpha / R`` equal to samora's scale, so B and A are
written as they are. MoELoRA and MTL-LoRA give one LoRA per task t (their update is fixed once the
task is). SAMoRA, HydraLoRA, SMoRA and MoORE route per token: no fixed low-rank update reproduces
them, and export refuses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from samora.adapter_files import CONFIG_NAME, FORMAT, WEIGHTS_NAME, install_adapter, read_adapter_tensors
from samora.cache import loadable_base_name
from samora.config import AdapterConfig
from samora.files import match_umask
from samora.inject import adapter_of
from samora.methods import config_from_dict, get_method
from samora.methods.base import AdapterLayer, not_exportable
from samora.routing import RoutingState

PEFT_PREFIX = "base_model.model."
#: What ``peft_type`` says in a samora-native adapter_config.json: PEFT and transformers look this
#: value up among their adapter types and fail with it in the message (a ``KeyError`` naming it).
NOT_PEFT_TYPE = (
    "SAMORA: a samora adapter, not a PEFT one. Load it with samora.load_adapter(model, folder), "
    "or write a PEFT LoRA with `samora export RUN --to peft OUT`"
)

Factors = tuple[torch.Tensor, torch.Tensor, float]  # (B (d_out, R), A (R, d_in), scale)


def check_exportable(config: AdapterConfig) -> None:
    """Raise :class:`NotMergeableError` with the reason when ``config``'s method has no PEFT LoRA form
    (its layer does not provide :meth:`~samora.methods.base.AdapterLayer.lora_factors`)."""
    if not get_method(config.method)[1].has_lora_factors():
        raise not_exportable(config)


def lora_factors(layer: AdapterLayer, task_id: int | None = None) -> Factors:
    """``(B, A, scale)`` with ``scale * B @ A == layer.delta_weight(task_id)`` (see the module table)."""
    check_exportable(layer.config)
    return layer.lora_factors(task_id)


def peft_lora(layers: dict[str, AdapterLayer], config: AdapterConfig, task_id: int | None = None) -> tuple[dict, dict]:
    """``(adapter_config, tensors)`` of the PEFT LoRA equal to ``layers`` for one task (or none)."""
    tensors, ranks, scales = {}, set(), set()
    with torch.no_grad():
        for name, layer in layers.items():
            b, a, scale = lora_factors(layer, task_id)
            tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = a.detach().to("cpu").contiguous()
            tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = b.detach().to("cpu").contiguous()
            ranks.add(a.shape[0])
            scales.add(scale)
    if len(ranks) != 1 or len(scales) != 1:  # every method above has one rank and scale per adapter
        raise ValueError(f"the exported layers disagree on rank {sorted(ranks)} or scale {sorted(scales)}")
    rank, scale = ranks.pop(), scales.pop()
    peft_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": loadable_base_name(config.base_model),  # PEFT loads it (no samora alias)
        "r": rank,
        "lora_alpha": scale * rank,
        "target_modules": config.target_modules,
        "lora_dropout": config.dropout,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "inference_mode": True,
        "init_lora_weights": True,
        "rank_pattern": {},
        "alpha_pattern": {},
    }
    return peft_config, tensors


def write_peft_lora(peft_config: dict, tensors: dict[str, torch.Tensor], output: str | os.PathLike) -> Path:
    """Write a PEFT LoRA folder (config + safetensors weights) and return it."""
    output = Path(output)
    existing = output / CONFIG_NAME
    if existing.is_file() and not is_peft_folder(output):
        raise ValueError(
            f"{output} holds a samora adapter (or another adapter_config.json); exporting there would "
            "overwrite it: choose another output folder"
        )
    output.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(output / WEIGHTS_NAME), metadata={"format": "pt"})
    match_umask(output / WEIGHTS_NAME)  # save_file writes 0o600; the user's umask decides
    (output / CONFIG_NAME).write_text(json.dumps(peft_config, indent=2) + "\n")
    return output


def export_peft(
    source: str | os.PathLike | nn.Module, output: str | os.PathLike, *, task: str | None = None
) -> list[Path]:
    """Write ``source`` (an adapted model, an adapter folder or a run folder) as PEFT LoRA folder(s).

    LoRA and MultiLoRA give one folder, ``output``. MoELoRA and MTL-LoRA give one LoRA per task:
    with ``task`` (a task name of the adapter) that task's LoRA in ``output``, else every task's in
    ``output/<task>/``. Token-routed methods raise :class:`NotMergeableError` with the reason.
    Returns the folders written.
    """
    config, layers = _exportable_layers(source)
    if config.merge_kind != "per_task":
        return [write_peft_lora(*peft_lora(layers, config), output)]
    if task is not None:
        if task not in config.tasks:
            raise ValueError(f"unknown task {task!r} for this adapter; its tasks are {config.tasks}")
        return [write_peft_lora(*peft_lora(layers, config, config.tasks.index(task)), output)]
    return [
        write_peft_lora(*peft_lora(layers, config, task_id), Path(output) / name)
        for task_id, name in enumerate(config.tasks)
    ]


def _exportable_layers(source) -> tuple[AdapterConfig, dict[str, AdapterLayer]]:
    """The adapter's config and layers: the model's own, or rebuilt from a saved folder."""
    if isinstance(source, nn.Module):
        handle = adapter_of(source)
        check_exportable(handle.config)
        return handle.config, {n: layer for n, layer in handle.layers.items() if not layer.disabled}
    return _layers_from_folder(_adapter_folder(Path(source)))


def _layers_from_folder(folder: Path) -> tuple[AdapterConfig, dict[str, AdapterLayer]]:
    """Rebuild the adapter layers of a saved adapter without its base model.

    Each layer wraps a stand-in ``nn.Linear`` on the meta device (its shape from the saved config) and
    takes its saved tensors by assignment: exporting never loads the base model's weights.
    """
    metadata, tensors = read_adapter_tensors(folder)
    config = config_from_dict(metadata["config"])
    check_exportable(config)  # before building layers: some token-routed layers read W at construction
    layer_class = get_method(config.method)[1]
    state, layers = RoutingState(), {}
    for name, (d_in, d_out) in metadata["modules"].items():
        stand_in = nn.Linear(d_in, d_out, bias=False, device="meta")
        layer = layer_class(stand_in, config, state, name=name)
        own = {key[len(name) + 1 :]: value for key, value in tensors.items() if key.startswith(f"{name}.")}
        missing, unexpected = layer.load_state_dict(own, strict=False, assign=True)
        missing = [key for key in missing if not key.startswith("base_layer.")]
        if missing or unexpected:
            raise ValueError(
                f"{folder}: the tensors of {name} do not fit a '{config.method}' layer "
                f"(missing {missing}, unexpected {unexpected}); re-save the adapter"
            )
        layers[name] = layer.eval()
    return config, layers


def _adapter_folder(path: Path) -> Path:
    """A run folder's ``adapter/`` subfolder, or the adapter folder itself."""
    return path / "adapter" if (path / "adapter" / CONFIG_NAME).is_file() else path


def read_peft_config(directory: str | os.PathLike) -> dict | None:
    """The adapter_config.json of ``directory`` when PEFT wrote it (not samora), else None."""
    path = Path(directory) / CONFIG_NAME
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    peft = isinstance(metadata, dict) and "peft_type" in metadata and metadata.get("format") != FORMAT
    return metadata if peft else None


def is_peft_folder(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds an adapter_config.json written by PEFT (not by samora)."""
    return read_peft_config(directory) is not None


def load_peft_lora(base_model: nn.Module, directory: str | os.PathLike, *, is_trainable: bool = False) -> nn.Module:
    """Adapt a fresh ``base_model`` with the PEFT LoRA in ``directory``, as a samora LoRA; return it.

    The samora LoRA computes what PEFT does, ``W x + (lora_alpha / r) B A x`` (``lora_alpha /
    sqrt(r)`` with ``use_rslora``), on exactly the modules the weights name. PEFT options that a plain
    LoRA cannot hold (DoRA, trained biases, ``modules_to_save``, per-module ranks) are refused. Any
    error leaves ``base_model`` unchanged; the adapter is frozen unless ``is_trainable``.
    """
    from samora.methods.lora import LoRAConfig

    directory = Path(directory)
    peft_config = json.loads((directory / CONFIG_NAME).read_text())
    _check_plain_lora(peft_config, directory)
    factors = _peft_factors(_read_peft_weights(directory), directory)
    ranks = {tensors["lora_A"].shape[0] for tensors in factors.values()}
    if len(ranks) != 1:
        raise ValueError(
            f"{directory}: the LoRA modules have different ranks {sorted(ranks)}; samora's LoRA has one rank"
        )
    r = ranks.pop()
    scale = peft_config["lora_alpha"] / (r**0.5 if peft_config.get("use_rslora") else r)
    config = LoRAConfig(
        r=r,
        alpha=scale * r,
        target_modules=sorted(factors),
        dropout=float(peft_config.get("lora_dropout") or 0.0),
        base_model=peft_config.get("base_model_name_or_path"),
    )
    tensors = {f"{name}.{key}": tensor for name, pair in factors.items() for key, tensor in pair.items()}
    dtypes = {tensor.dtype for tensor in tensors.values()}
    install_adapter(
        base_model,
        config,
        tensors,
        dtype=dtypes.pop() if len(dtypes) == 1 else torch.float32,
        source=str(directory),
        is_trainable=is_trainable,
    )
    return base_model


def _check_plain_lora(peft_config: dict, directory: Path) -> None:
    """Refuse PEFT adapters that are not a plain LoRA of one rank on linear layers."""
    kind = peft_config.get("peft_type")
    if kind != "LORA":
        raise ValueError(
            f"{directory} holds a PEFT '{kind}' adapter; samora converts only PEFT LoRA adapters "
            "(peft_type 'LORA'): load this one with peft.PeftModel.from_pretrained"
        )
    unsupported = {
        "use_dora": "DoRA's magnitude vectors",
        "lora_bias": "LoRA biases",
        "bias": "trained biases",
        "modules_to_save": "fully trained modules (modules_to_save)",
        "rank_pattern": "per-module ranks",
        "alpha_pattern": "per-module alphas",
    }
    used = [what for key, what in unsupported.items() if peft_config.get(key) not in (None, False, "none", {}, [])]
    if used:
        raise ValueError(
            f"{directory} is a PEFT LoRA with {', '.join(used)}, which a samora LoRA cannot hold; "
            "load it with peft.PeftModel.from_pretrained, or retrain without those options"
        )


def _read_peft_weights(directory: Path) -> dict[str, torch.Tensor]:
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights} is missing; samora reads PEFT adapters saved as safetensors "
            "(PEFT's default: save_pretrained(..., safe_serialization=True))"
        )
    return load_file(str(weights))


def _peft_factors(tensors: dict[str, torch.Tensor], directory: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``module name -> {"lora_A": (r, d_in), "lora_B": (d_out, r)}`` from PEFT's tensor names."""
    factors: dict[str, dict[str, torch.Tensor]] = {}
    unexpected = []
    for key, tensor in tensors.items():
        stem, _, factor = key.removesuffix(".weight").rpartition(".")
        if not key.startswith(PEFT_PREFIX) or not key.endswith(".weight") or factor not in ("lora_A", "lora_B"):
            unexpected.append(key)
            continue
        factors.setdefault(stem[len(PEFT_PREFIX) :], {})[factor] = tensor
    incomplete = sorted(name for name, pair in factors.items() if len(pair) != 2)
    if unexpected or incomplete or not factors:
        raise ValueError(
            f"{directory}: not a plain PEFT LoRA: unexpected tensors {unexpected[:4]}, modules "
            f"without both lora_A and lora_B {incomplete[:4]}; expected only "
            f"'{PEFT_PREFIX}<module>.lora_A.weight' and '.lora_B.weight'"
        )
    return factors
