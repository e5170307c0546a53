"""The ``model`` section's loading options, checked before anything loads and turned into the keywords of
``AutoModelForCausalLM.from_pretrained`` (and of the tokenizer's).

```yaml
model:
  name: meta-llama/Llama-3.1-8B
  dtype: bfloat16
  attn_implementation: sdpa            # eager, sdpa, flash_attention_2, flash_attention_3, flex_attention
  revision: main                       # a branch, tag or commit of the hub repository (tokenizer too)
  trust_remote_code: false             # run the repository's own modelling code (tokenizer too)
  device_map: auto                     # single process only; under torchrun / accelerate each rank loads its own
  low_cpu_mem_usage: true
  quantization: 4bit                   # QLoRA: nf4, double quantisation, compute in model.dtype
  from_pretrained: {subfolder: base}   # any other from_pretrained keyword, passed as written
```

``quantization`` is ``4bit`` (nf4 with double quantisation, the QLoRA paper's), ``8bit``
(LLM.int8()), or a mapping of ``transformers.BitsAndBytesConfig`` keywords, e.g.
``{load_in_4bit: true, bnb_4bit_quant_type: fp4, bnb_4bit_compute_dtype: bfloat16,
bnb_4bit_quant_storage: bfloat16}``. Nothing here imports torch: the checks run when the
configuration is read, and a missing package (bitsandbytes, flash-attn) stops there, naming the
install command.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from samora.config import ConfigError

QUANTIZATION_SHORTHANDS = {
    "4bit": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True},
    "8bit": {"load_in_8bit": True},
}
FLOAT_DTYPES = ("float32", "bfloat16", "float16")
# BitsAndBytesConfig's keywords -> the values each accepts (None: any value of the right YAML type)
QUANTIZATION_KEYS: dict[str, tuple | type] = {
    "load_in_4bit": bool,
    "load_in_8bit": bool,
    "bnb_4bit_quant_type": ("nf4", "fp4"),
    "bnb_4bit_use_double_quant": bool,
    "bnb_4bit_compute_dtype": FLOAT_DTYPES,
    "bnb_4bit_quant_storage": ("uint8", *FLOAT_DTYPES),
    "llm_int8_threshold": float,
    "llm_int8_skip_modules": list,
    "llm_int8_enable_fp32_cpu_offload": bool,
    "llm_int8_has_fp16_weight": bool,
}
# from_pretrained keywords that a key of the model section sets: refused under model.from_pretrained
OWN_KEYWORDS = {
    "dtype": "model.dtype",
    "torch_dtype": "model.dtype",
    "quantization_config": "model.quantization",
    "load_in_4bit": "model.quantization",
    "load_in_8bit": "model.quantization",
    **{key: f"model.{key}" for key in ("attn_implementation", "revision", "trust_remote_code", "device_map")},
    "low_cpu_mem_usage": "model.low_cpu_mem_usage",
}
# attn_implementation -> (the package it needs, its pip name)
ATTENTION_PACKAGES = {"flash_attention_2": ("flash_attn", "flash-attn"), "flash_attention_3": ("flash_attn_3", None)}


def quantization_keywords(quantization: str | dict | None) -> dict[str, Any] | None:
    """The ``BitsAndBytesConfig`` keywords ``model.quantization`` stands for (a shorthand expanded),
    checked: known keys, accepted values, exactly one of 4-bit and 8-bit. None: no quantization."""
    if quantization is None:
        return None
    if isinstance(quantization, str):
        if quantization not in QUANTIZATION_SHORTHANDS:
            raise ConfigError(
                f"model.quantization must be one of {sorted(QUANTIZATION_SHORTHANDS)} or a mapping of "
                f"transformers.BitsAndBytesConfig keywords, got {quantization!r}"
            )
        return dict(QUANTIZATION_SHORTHANDS[quantization])
    unknown = sorted(set(quantization) - set(QUANTIZATION_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[f'model.quantization.{k}' for k in unknown]}; BitsAndBytesConfig keywords "
            f"samora passes: {sorted(QUANTIZATION_KEYS)}"
        )
    for key, value in quantization.items():
        _check_quantization_value(key, value)
    if bool(quantization.get("load_in_4bit")) == bool(quantization.get("load_in_8bit")):
        raise ConfigError(
            "model.quantization must set exactly one of load_in_4bit: true (QLoRA) and load_in_8bit: true, "
            f"got {quantization!r}"
        )
    return dict(quantization)


def _check_quantization_value(key: str, value: Any) -> None:
    accepted = QUANTIZATION_KEYS[key]
    if isinstance(accepted, tuple):
        ok, expected = value in accepted, f"one of {list(accepted)}"
    elif accepted is float:
        ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:
        ok, expected = isinstance(value, accepted), f"a {accepted.__name__}"
    if not ok:
        raise ConfigError(f"model.quantization.{key} must be {expected}, got {value!r}")


def check_model_options(model: Any) -> None:
    """The checks of a ``model`` section (:class:`~samora.run.sections.ModelSection`) that its
    field types cannot express: the quantization keywords, the packages an option needs (installed?),
    ``device_map`` in one process only."""
    quantization_keywords(model.quantization)
    for key in model.from_pretrained:
        if key in OWN_KEYWORDS:
            raise ConfigError(
                f"model.from_pretrained.{key}: samora sets {key} itself; use {OWN_KEYWORDS[key]} instead"
            )
    if model.quantization is not None:
        _require_package("bitsandbytes", "bitsandbytes", "model.quantization")
        _require_package("peft", "peft", "model.quantization (its k-bit training preparation)")
    needed = ATTENTION_PACKAGES.get(model.attn_implementation or "")
    if needed is not None:
        module, pip_name = needed
        _require_package(module, pip_name, f"model.attn_implementation={model.attn_implementation}")
    if model.device_map is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            f"model.device_map={model.device_map!r} places one model over this machine's devices, but this "
            f"run has {os.environ['WORLD_SIZE']} processes (torchrun / accelerate launch), each of which "
            "loads its own copy onto its own device: leave model.device_map unset (null)"
        )


def _require_package(module: str, pip_name: str | None, option: str) -> None:
    if importlib.util.find_spec(module) is not None:
        return
    install = f"pip install {pip_name}" if pip_name else f"install the {module} package (built from source)"
    raise ConfigError(f"{option} needs the {module} package, which is not installed: {install}")
