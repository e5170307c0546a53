"""The ``model`` section's loading options: checked when the configuration is read (before any model
loads), passed to ``from_pretrained`` (and the tokenizer), and read back from an adapter's record."""

from __future__ import annotations

import pytest
import torch

from samora.config import ConfigError
from samora.run.model_loading import from_pretrained_keywords, recorded_loading, tokenizer_keywords
from samora.run.run_config import config_from_dict, load_run_config
from samora.run.sections import ModelSection


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.quantization=3bit"], "model.quantization must be one of ['4bit', '8bit'] or a mapping"),
        (["model.quantization.bits=4"], "unknown key(s) ['model.quantization.bits']; BitsAndBytesConfig keywords"),
        (
            ["model.quantization.load_in_4bit=true", "model.quantization.bnb_4bit_quant_type=nf5"],
            "model.quantization.bnb_4bit_quant_type must be one of ['nf4', 'fp4'], got 'nf5'",
        ),
        (
            ["model.quantization.load_in_4bit=true", "model.quantization.bnb_4bit_use_double_quant=yes please"],
            "model.quantization.bnb_4bit_use_double_quant must be a bool",
        ),
        (["model.quantization.load_in_4bit=false"], "must set exactly one of load_in_4bit: true (QLoRA) and"),
        (
            ["model.quantization.load_in_4bit=true", "model.quantization.load_in_8bit=true"],
            "must set exactly one of load_in_4bit",
        ),
        (["model.attn_implementation=fast"], "model.attn_implementation must be one of 'eager', 'sdpa'"),
        (["model.trust_remote_code=maybe"], "model.trust_remote_code must be True or False, got 'maybe'"),
        (["model.revison=main"], "unknown key(s) ['model.revison']"),
        (["model.from_pretrained.torch_dtype=float16"], "model.from_pretrained.torch_dtype: samora sets torch_dtype"),
        (["model.from_pretrained.load_in_4bit=true"], "itself; use model.quantization instead"),
    ],
)
def test_a_bad_loading_option_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_run_config(overrides=overrides)
    assert message in str(caught.value)


@pytest.mark.skipif(__import__("importlib").util.find_spec("flash_attn") is not None, reason="flash-attn installed")
def test_flash_attention_without_its_package_stops_naming_the_install_command():
    with pytest.raises(
        ConfigError,
        match=r"attn_implementation=flash_attention_2 needs the flash_attn package.*pip install flash-attn",
    ):
        load_run_config(overrides=["model.attn_implementation=flash_attention_2"])


def test_device_map_is_refused_in_a_multi_process_run(monkeypatch):
    load_run_config(overrides=["model.device_map=auto"])  # one process: fine
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="model.device_map='auto' .* 2 processes"):
        load_run_config(overrides=["model.device_map=auto"])


def test_the_options_reach_from_pretrained_and_the_tokenizer():
    config = load_run_config(
        overrides=[
            "model.quantization=4bit",
            "model.attn_implementation=sdpa",
            "model.revision=v1.0",
            "model.trust_remote_code=true",
            "model.low_cpu_mem_usage=true",
        ]
    )
    kwargs = from_pretrained_keywords(config.model, "bfloat16")
    quantization = kwargs.pop("quantization_config")
    assert kwargs == {
        "dtype": torch.bfloat16,
        "attn_implementation": "sdpa",
        "revision": "v1.0",
        "trust_remote_code": True,
        "low_cpu_mem_usage": True,
    }
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_use_double_quant and quantization.bnb_4bit_compute_dtype == torch.bfloat16
    assert tokenizer_keywords(config.model) == {"revision": "v1.0", "trust_remote_code": True}
    assert from_pretrained_keywords(ModelSection(), "float32") == {"dtype": torch.float32}
    other = load_run_config(overrides=["model.from_pretrained={subfolder: base, use_safetensors: true}"]).model
    assert from_pretrained_keywords(other, "float32") == {
        "subfolder": "base",
        "use_safetensors": True,
        "dtype": torch.float32,
    }


def test_bitsandbytes_keywords_are_passed_as_written():
    quantization = {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "fp4",
        "bnb_4bit_compute_dtype": "float16",
        "bnb_4bit_quant_storage": "bfloat16",
    }
    config = load_run_config(overrides=[f"model.quantization={quantization}"])
    built = from_pretrained_keywords(config.model, "float32")["quantization_config"]
    assert built.bnb_4bit_quant_type == "fp4" and not built.bnb_4bit_use_double_quant
    assert built.bnb_4bit_compute_dtype == torch.float16 and built.bnb_4bit_quant_storage == torch.bfloat16


def test_the_saved_config_round_trips_the_options():
    config = load_run_config(overrides=["model.quantization=8bit", "model.attn_implementation=eager"])
    assert config_from_dict(config.to_dict()).model == config.model


def test_an_adapters_recorded_quantization_is_used_unless_the_model_section_sets_one():
    recorded = {
        "quant_method": "bitsandbytes",
        "load_in_4bit": True,
        "load_in_8bit": False,
        "bnb_4bit_quant_type": "fp4",
    }
    recorded |= {"llm_int8_skip_modules": None, "bnb_4bit_compute_dtype": "float32"}
    options = recorded_loading(ModelSection(), {"base_model_quantization": recorded})
    assert options.quantization == {
        "load_in_4bit": True,
        "load_in_8bit": False,
        "bnb_4bit_quant_type": "fp4",
        "bnb_4bit_compute_dtype": "float32",
    }
    assert (
        recorded_loading(ModelSection(quantization="8bit"), {"base_model_quantization": recorded}).quantization
        == "8bit"
    )
    assert recorded_loading(ModelSection(), {"base_model_quantization": None}).quantization is None
