"""Saving and loading: file contents, atomicity, and clear errors that leave the base unchanged."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

import samora
from samora.adapter_files import CONFIG_NAME, WEIGHTS_NAME
from tests.helpers import tiny_model, trained_samora, wider_llama


def test_config_records_method_hyperparameters_tasks_and_versions(tmp_path):
    samora.save_adapter(trained_samora(temperature=0.5), tmp_path)
    saved = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert saved["method"] == "samora" and saved["tasks"] == ["a", "b"]
    assert saved["config"]["temperature"] == 0.5 and saved["config"]["r"] == 4
    assert saved["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert saved["samora_version"] == samora.__version__
    assert set(saved["modules"]) == {f"model.layers.{i}.self_attn.{m}_proj" for i in range(2) for m in "qkvo"}
    tensors = safetensors.torch.load_file(tmp_path / WEIGHTS_NAME)
    assert all(".samora_" in key for key in tensors)  # adapter only, never the frozen base
    assert sorted(tmp_path.iterdir()) == [tmp_path / CONFIG_NAME, tmp_path / WEIGHTS_NAME]


def test_loaded_adapter_is_frozen_unless_trainable(tmp_path):
    samora.save_adapter(trained_samora(), tmp_path)
    assert samora.trainable_parameters(samora.load_adapter(tiny_model(), tmp_path)).trainable == 0
    assert samora.trainable_parameters(samora.load_adapter(tiny_model(), tmp_path, is_trainable=True)).trainable > 0


def test_crash_during_save_keeps_the_previous_adapter(tmp_path, monkeypatch, input_ids):
    first = trained_samora(seed=0)
    samora.save_adapter(first, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("samora.persistence.save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        samora.save_adapter(trained_samora(seed=1), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary files left
    reloaded = samora.load_adapter(tiny_model(), tmp_path)
    assert torch.equal(reloaded(input_ids, task_ids="a").logits, first(input_ids, task_ids="a").logits)


def test_weights_from_another_save_are_detected(tmp_path):
    samora.save_adapter(trained_samora(seed=0), tmp_path / "one")
    samora.save_adapter(trained_samora(seed=1), tmp_path / "two")
    (tmp_path / "one" / WEIGHTS_NAME).write_bytes((tmp_path / "two" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(ValueError, match="checksum"):
        samora.load_adapter(tiny_model(), tmp_path / "one")


def assert_unchanged_after_failed_load(folder, error, match, input_ids):
    base = tiny_model()
    logits = base(input_ids).logits
    with pytest.raises(error, match=match):
        samora.load_adapter(base, folder)
    assert not hasattr(base, "samora_adapter") and "forward" not in vars(base)
    assert torch.equal(base(input_ids).logits, logits)
    assert all(type(m).__name__ != "SAMoRALayer" for m in base.modules())


def test_missing_folder_and_files(tmp_path, input_ids):
    assert_unchanged_after_failed_load(tmp_path / "nope", FileNotFoundError, "does not exist", input_ids)
    samora.save_adapter(trained_samora(), tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    assert_unchanged_after_failed_load(tmp_path, FileNotFoundError, WEIGHTS_NAME, input_ids)
    (tmp_path / CONFIG_NAME).unlink()
    assert_unchanged_after_failed_load(tmp_path, FileNotFoundError, CONFIG_NAME, input_ids)


def test_corrupted_files(tmp_path, input_ids):
    samora.save_adapter(trained_samora(), tmp_path)
    weights = tmp_path / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-100])
    assert_unchanged_after_failed_load(tmp_path, ValueError, "corrupted", input_ids)
    (tmp_path / CONFIG_NAME).write_text("{ not json")
    assert_unchanged_after_failed_load(tmp_path, ValueError, "not valid JSON", input_ids)


def test_unknown_method_lists_known_ones(tmp_path, input_ids):
    samora.save_adapter(trained_samora(), tmp_path)
    saved = json.loads((tmp_path / CONFIG_NAME).read_text())
    saved["config"]["method"] = "nolora"
    (tmp_path / CONFIG_NAME).write_text(json.dumps(saved))
    assert_unchanged_after_failed_load(tmp_path, ValueError, r"unknown method 'nolora'.*'samora'", input_ids)


def test_base_with_other_shapes_is_refused_and_untouched(tmp_path, input_ids):
    samora.save_adapter(trained_samora(), tmp_path)
    other = wider_llama()
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(
        ValueError, match=r"do not match this model.*q_proj: saved \(in, out\) \[32, 32\], this model \[48, 48\]"
    ):
        samora.load_adapter(other, tmp_path)
    assert not hasattr(other, "samora_adapter")
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())


def test_gathered_state_dict_is_saved_when_the_models_own_tensors_are_shards(tmp_path, input_ids):
    """FSDP / ZeRO-3: each rank holds a flat piece of every parameter; the Trainer gathers the full
    state dict and hands it to save_adapter, which must write that and not the pieces."""
    model = trained_samora()
    expected = model(input_ids, task_ids="b").logits
    gathered = {key: value.clone() for key, value in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.flatten()[: max(p.numel() // 2, 1)].clone()  # this rank's shard
    samora.save_adapter(model, tmp_path, state_dict=gathered)
    reloaded = samora.load_adapter(tiny_model(), tmp_path)
    torch.testing.assert_close(reloaded(input_ids, task_ids="b").logits, expected, rtol=0, atol=0)
    saved = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert saved["modules"]["model.layers.0.self_attn.q_proj"] == [32, 32]  # full shapes, not the shards'


def test_a_state_dict_with_shards_or_gaps_is_refused_before_anything_is_written(tmp_path):
    model = trained_samora()
    full = model.state_dict()
    key = next(k for k in full if k.endswith("samora_A"))
    with pytest.raises(ValueError, match="samora_A .* is a shard"):
        samora.save_adapter(model, tmp_path / "shard", state_dict={**full, key: full[key].flatten()[:3]})
    with pytest.raises(ValueError, match="lacks 1 adapter tensors"):
        samora.save_adapter(model, tmp_path / "gap", state_dict={k: v for k, v in full.items() if k != key})
    assert not (tmp_path / "shard").exists() and not (tmp_path / "gap").exists()
