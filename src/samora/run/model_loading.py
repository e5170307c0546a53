"""The models a run works on: the base model (the offline SmolLM2, a local folder or a hub id) and
an adapter folder (samora's or a PEFT LoRA) loaded onto the base model it names."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from samora.cache import SMOLLM2_NAME, bundled_model_name
from samora.config import ConfigError
from samora.methods.quantized import keep_trainable_layout
from samora.models.smollm2 import SMOLLM2_ALIASES
from samora.run.model_options import QUANTIZATION_KEYS, quantization_keywords
from samora.run.sections import ModelSection, RunConfig

DEFAULT_MODEL = SMOLLM2_NAME


def torch_dtype(name: str) -> torch.dtype:
    """``auto`` is bf16 on a GPU that supports it, else float32."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def load_base_model(name: str, dtype: str = "auto", options: ModelSection | None = None):
    """``(model, tokenizer)`` for the offline SmolLM2, a local folder, or a hub id (when online).

    ``options``: the run's ``model`` section, whose loading options (quantization, attention,
    revision...; see :func:`from_pretrained_keywords`) reach ``from_pretrained``; its ``name`` and
    ``dtype`` are the arguments above. The offline SmolLM2 is named by an alias
    (``smollm2-135m-instruct``) or, in adapters saved before they recorded its name, by the path of
    a converted folder on some machine: both load this machine's converted copy.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options = options or ModelSection()
    kwargs = from_pretrained_keywords(options, dtype)
    if name in SMOLLM2_ALIASES or bundled_model_name(name):
        from samora.models.smollm2 import load_smollm2

        model, tokenizer = load_smollm2(**kwargs)
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, **tokenizer_keywords(options))
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
    if "quantization_config" in kwargs:
        prepare_quantized_model(model)
    elif torch.cuda.is_available() and "device_map" not in kwargs:  # this process's GPU under torchrun / accelerate
        model.to(local_device())
    return model, tokenizer


def prepare_quantized_model(model) -> None:
    """A quantized base made ready for QLoRA, as a PEFT user does before ``get_peft_model``: PEFT's
    ``prepare_model_for_kbit_training`` (every parameter frozen, the layers left unquantized (norms,
    embeddings, head) cast from fp16/bf16 to fp32; checkpointing is ``train.gradient_checkpointing``'s),
    and bitsandbytes' 4-bit layers kept in their trainable layout
    (:func:`samora.methods.quantized.keep_trainable_layout`: training may follow an evaluation). Done
    at loading, so training, evaluation and a reloaded adapter all see the same model."""
    from peft import prepare_model_for_kbit_training

    prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    keep_trainable_layout(model)


def local_device() -> str:
    """This process's GPU under torchrun / accelerate launch (``cuda:LOCAL_RANK``)."""
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def from_pretrained_keywords(options: ModelSection, dtype: str) -> dict[str, Any]:
    """The ``from_pretrained`` keywords of a ``model`` section: ``model.from_pretrained``'s, ``dtype``, the
    options that are set, and ``quantization_config`` (a ``BitsAndBytesConfig``; 4-bit computes in
    ``dtype`` unless ``bnb_4bit_compute_dtype`` says otherwise). A quantized model on a GPU is placed on this process's
    device (``device_map={"": cuda:LOCAL_RANK}``, as PEFT's QLoRA examples do): a quantized model
    cannot be moved after loading."""
    kwargs: dict[str, Any] = {**options.from_pretrained, "dtype": torch_dtype(dtype)}
    for key in ("attn_implementation", "revision", "device_map", "low_cpu_mem_usage"):
        if getattr(options, key) is not None:
            kwargs[key] = getattr(options, key)
    if options.trust_remote_code:
        kwargs["trust_remote_code"] = True
    quantization = quantization_keywords(options.quantization)
    if quantization is not None:
        from transformers import BitsAndBytesConfig

        if quantization.get("load_in_4bit"):
            quantization.setdefault("bnb_4bit_compute_dtype", kwargs["dtype"])
        kwargs["quantization_config"] = BitsAndBytesConfig(**quantization)
        if torch.cuda.is_available() and "device_map" not in kwargs:
            kwargs["device_map"] = {"": local_device()}
    return kwargs


def tokenizer_keywords(options: ModelSection) -> dict[str, Any]:
    """The tokenizer loads from the same ``revision`` and with the same ``trust_remote_code`` as the model."""
    return {
        **({"revision": options.revision} if options.revision is not None else {}),
        **({"trust_remote_code": True} if options.trust_remote_code else {}),
    }


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
    model, tokenizer = load_base_model(name, config.model.dtype, recorded_loading(config.model, saved))
    return samora.load_adapter(model, adapter_dir), tokenizer, saved


def recorded_loading(options: ModelSection, saved: dict[str, Any]) -> ModelSection:
    """``options`` with the quantization the adapter records of its base (``base_model_quantization``,
    a ``BitsAndBytesConfig`` as a dict) when ``model.quantization`` is not set: an adapter trained on a
    4-bit base is evaluated on the same 4-bit base."""
    recorded = saved.get("base_model_quantization")
    if options.quantization is not None or not recorded:
        return options
    keywords = {key: value for key, value in recorded.items() if key in QUANTIZATION_KEYS and value is not None}
    return dataclasses.replace(options, quantization=keywords)


def adapter_folder(path: str) -> Path:
    """Accept a run folder (its adapter/ subfolder) or an adapter folder (samora's or a PEFT LoRA)."""
    folder = Path(path)
    return folder / "adapter" if (folder / "adapter" / "adapter_config.json").is_file() else folder
