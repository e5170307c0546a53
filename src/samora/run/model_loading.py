"""The models a run works on: the base model (the offline SmolLM2, a local folder or a hub id) and
an adapter folder (samora's or a PEFT LoRA) loaded onto the base model it names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from samora.cache import SMOLLM2_NAME, bundled_model_name
from samora.run.coercion import ConfigError
from samora.run.run_config import RunConfig
from samora.run.smollm2 import SMOLLM2_ALIASES

DEFAULT_MODEL = SMOLLM2_NAME


def torch_dtype(name: str) -> torch.dtype:
    """``auto`` is bf16 on a GPU that supports it, else float32."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def load_base_model(name: str, dtype: str = "auto"):
    """``(model, tokenizer)`` for the offline SmolLM2, a local folder, or a hub id (when online).

    The offline SmolLM2 is named by an alias (``smollm2-135m-instruct``) or, in adapters saved before
    they recorded its name, by the path of a converted folder on some machine: both load this
    machine's converted copy.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"dtype": torch_dtype(dtype)}
    if name in SMOLLM2_ALIASES or bundled_model_name(name):
        from samora.run.smollm2 import load_smollm2

        model, tokenizer = load_smollm2(**kwargs)
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
        except ValueError as err:
            if "Unrecognized configuration class" in str(err):  # e.g. a T5 (encoder-decoder) folder
                raise ConfigError(
                    f"model.name {name!r} is not a causal language model ({str(err).splitlines()[0]}); "
                    "samora trains and evaluates causal LMs (AutoModelForCausalLM) only"
                ) from None
            raise _not_loadable(name, err) from None
        except OSError as err:
            raise _not_loadable(name, err) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if torch.cuda.is_available():  # this process's GPU under torchrun / accelerate launch
        model.to(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return model, tokenizer


def _not_loadable(name: str, err: Exception) -> ConfigError:
    return ConfigError(
        f"model.name {name!r} is neither a local model folder nor a reachable hub id ({err}). "
        "Use model.name=smollm2-135m-instruct for the offline model, or a folder written by save_pretrained"
    )


def read_saved_adapter(adapter_dir: Path) -> dict[str, Any]:
    """``{"base_model", "tasks"}`` of a samora adapter folder, or of a PEFT LoRA folder (its base from
    ``base_model_name_or_path``, no tasks)."""
    import samora
    from samora.peft_format import read_peft_config

    peft_config = read_peft_config(adapter_dir)
    if peft_config is not None:
        return {"base_model": peft_config.get("base_model_name_or_path"), "tasks": []}
    return samora.read_adapter_config(adapter_dir)


def load_adapted(adapter_dir: Path, config: RunConfig, saved: dict[str, Any] | None = None):
    """Load the base model the adapter names (or ``model.name`` when given) and the adapter on it
    (a samora adapter folder or a PEFT LoRA folder); return ``(model, tokenizer, saved)``."""
    import samora

    saved = saved or read_saved_adapter(adapter_dir)
    name = config.model.name or saved.get("base_model")
    if not name:
        raise ConfigError(
            f"the adapter in {adapter_dir} does not name its base model; set model.name=<hub id or folder>"
        )
    model, tokenizer = load_base_model(name, config.model.dtype)
    return samora.load_adapter(model, adapter_dir), tokenizer, saved


def adapter_folder(path: str) -> Path:
    """Accept a run folder (its adapter/ subfolder) or an adapter folder (samora's or a PEFT LoRA)."""
    folder = Path(path)
    return folder / "adapter" if (folder / "adapter" / "adapter_config.json").is_file() else folder
