"""An adapter names its base (hub id, or the bundled model's name) and keeps the local path apart;
adapter files and converted-model folders get the modes of the user's umask."""

from __future__ import annotations

import json
import os

import pytest
from safetensors.torch import save_file

import samora
import samora.models.smollm2
from samora.cache import SMOLLM2_HUB_ID, SMOLLM2_NAME, base_model_identity
from samora.models.smollm2 import write_folder_atomically
from samora.run.pipeline import load_adapted
from samora.run.run_config import load_run_config
from tests.helpers import tiny_model


@pytest.fixture
def converted_folder(tmp_path):
    """A tiny model saved where samora's SmolLM2 conversion would be (a machine-local cache path)."""
    folder = tmp_path / "cache" / f"{SMOLLM2_NAME}-transformers-9.9.9"
    tiny_model("llama").save_pretrained(folder)
    return folder


def test_the_bundled_model_is_recorded_by_name_with_its_path_apart(converted_folder, tmp_path):
    from transformers import AutoModelForCausalLM

    model = samora.get_model(AutoModelForCausalLM.from_pretrained(converted_folder), samora.LoRAConfig(r=2))
    assert samora.adapter_of(model).config.base_model == SMOLLM2_NAME
    samora.save_adapter(model, tmp_path / "adapter")
    saved = samora.read_adapter_config(tmp_path / "adapter")
    assert saved["base_model"] == saved["base_model_name_or_path"] == SMOLLM2_NAME
    assert saved["base_model_path"] == str(converted_folder.resolve())
    samora.export_peft(tmp_path / "adapter", tmp_path / "peft")  # PEFT knows no samora alias: the hub id
    assert (
        json.loads((tmp_path / "peft" / "adapter_config.json").read_text())["base_model_name_or_path"]
        == SMOLLM2_HUB_ID
    )


def test_hub_ids_and_local_folders_keep_their_names(tmp_path):
    assert base_model_identity("Qwen/Qwen3-8B") == ("Qwen/Qwen3-8B", None)
    assert base_model_identity(str(tmp_path)) == (str(tmp_path), str(tmp_path.resolve()))
    assert base_model_identity(None) == (None, None)


@pytest.mark.parametrize("recorded_as", ["name", "cache path of another machine"])
def test_an_adapter_naming_the_bundled_model_loads_this_machines_copy(
    recorded_as, converted_folder, tmp_path, monkeypatch
):
    """New adapters record the name; old ones a cache path from another machine: both load the bundled model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    foreign_cache = tmp_path / "another-machine" / ".cache" / "samora" / "smollm2-135m-instruct-transformers-5.0.0"
    recorded = SMOLLM2_NAME if recorded_as == "name" else str(foreign_cache)

    model = samora.get_model(AutoModelForCausalLM.from_pretrained(converted_folder), samora.LoRAConfig(r=2))
    samora.save_adapter(model, tmp_path / "adapter")
    config_path = tmp_path / "adapter" / "adapter_config.json"
    config_path.write_text(config_path.read_text().replace(f'"{SMOLLM2_NAME}"', json.dumps(recorded)))
    loads = []

    def bundled(**kwargs):
        loads.append(kwargs)
        return AutoModelForCausalLM.from_pretrained(converted_folder), AutoTokenizer.from_pretrained(
            samora.models.smollm2.smollm2_path()
        )

    monkeypatch.setattr(samora.models.smollm2, "load_smollm2", bundled)
    loaded, _, saved = load_adapted(tmp_path / "adapter", load_run_config(overrides=["model.dtype=float32"]))
    assert saved["base_model"] == recorded and len(loads) == 1
    assert samora.adapter_of(loaded).config.method == "lora"


@pytest.fixture
def umask():
    def set_umask(mask: int) -> None:
        os.umask(mask)

    previous = os.umask(0o022)
    yield set_umask
    os.umask(previous)


def modes(folder) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mode & 0o777 for p in [folder, *folder.rglob("*")]}


@pytest.mark.parametrize("mask,file_mode,folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_saved_adapters_and_exports_follow_the_umask(mask, file_mode, folder_mode, umask, tmp_path):
    umask(mask)
    model = samora.get_model(tiny_model("llama"), samora.LoRAConfig(r=2))
    samora.save_adapter(model, tmp_path / "run" / "adapter")
    samora.export_peft(model, tmp_path / "peft")
    for folder in (tmp_path / "run" / "adapter", tmp_path / "peft"):
        found = modes(folder)
        assert found == {".": folder_mode, "adapter_config.json": file_mode, "adapter_model.safetensors": file_mode}


def test_a_converted_model_folder_follows_the_umask(umask, tmp_path):
    umask(0o022)
    target = tmp_path / "cache" / "converted"

    def write(staging):  # what save_pretrained does: safetensors' save_file (0o600) and a subfolder
        save_file({"w": __import__("torch").zeros(2)}, str(staging / "model.safetensors"))
        (staging / "tokenizer").mkdir(mode=0o700)
        (staging / "tokenizer" / "config.json").write_text("{}")

    write_folder_atomically(target, write)
    assert modes(target) == {
        ".": 0o755,
        "model.safetensors": 0o644,
        "tokenizer": 0o755,
        "tokenizer/config.json": 0o644,
    }
    assert [p.name for p in target.parent.iterdir()] == ["converted"]  # no staging folder left
