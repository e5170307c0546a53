"""Adapter-only checkpoints: exact resume, and a full disk never costs the previous checkpoint."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

import samora
import samora.persistence
from samora.training import last_complete_checkpoint, load_adapter_weights, train
from tests.helpers import TASKS, Collator, adapted_model, adapter_tensors, tiny_dataset, tiny_model

COMMON = dict(
    per_device_train_batch_size=4, logging_steps=1, data_collator=Collator(), learning_rate=1e-2, disable_tqdm=True
)


def test_two_n_steps_equal_n_steps_then_resume_for_n_more(tmp_path):
    """16 examples, batch 4: 4 steps per epoch, so the resume lands mid-epoch and then crosses an epoch.

    Dropout is on, so the data order and the RNG state must both be restored for the runs to agree.
    """
    dataset = tiny_dataset(16)
    straight = adapted_model(dropout=0.1)
    train(straight, None, dataset, output_dir=tmp_path / "straight", max_steps=6, save_steps=3, **COMMON)
    checkpoint = tmp_path / "straight" / "checkpoint-3"
    assert {p.name for p in checkpoint.iterdir()} >= {
        "adapter_model.safetensors",
        "adapter_config.json",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "trainer_state.json",
    }
    assert not (checkpoint / "model.safetensors").exists()  # the frozen base is never written

    resumed = adapted_model(dropout=0.1, adapter_seed=123)  # same base, different adapter init
    at_first_forward = []
    resumed.register_forward_pre_hook(lambda *_: at_first_forward.append(adapter_tensors(resumed)))
    result = train(
        resumed, None, dataset, output_dir=tmp_path / "resumed", max_steps=6, resume=str(checkpoint), **COMMON
    )

    saved = samora.load_adapter(_fresh_base(), checkpoint)
    assert all(torch.equal(v, adapter_tensors(saved)[k]) for k, v in at_first_forward[0].items())
    assert result.resumed_from == str(checkpoint) and result.global_step == 6
    expected, got = adapter_tensors(straight), adapter_tensors(resumed)
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def _fresh_base():
    return tiny_model()


def test_failed_save_leaves_previous_adapter_bit_identical(tmp_path, monkeypatch):
    model = adapted_model(perturb=0.1)
    samora.save_adapter(model, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)  # part of the file reached the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad).add_(1.0)
    monkeypatch.setattr(samora.persistence, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        samora.save_adapter(model, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files, nothing changed
    samora.load_adapter(_fresh_base(), tmp_path)


def test_disk_full_during_a_checkpoint_keeps_the_last_complete_one_resumable(tmp_path, monkeypatch):
    dataset = tiny_dataset(8)
    real_save = samora.persistence.save_file
    saves = []

    def fail_second_save(tensors, filename, metadata=None):
        saves.append(filename)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(samora.persistence, "save_file", fail_second_save)
    with pytest.raises(OSError, match="the disk holding .* is full: a checkpoint needs about"):
        train(adapted_model(), None, dataset, output_dir=tmp_path, max_steps=3, save_steps=1, **COMMON)
    first, second = tmp_path / "checkpoint-1", tmp_path / "checkpoint-2"
    assert second.is_dir() and not (second / "adapter_model.safetensors").exists()
    assert last_complete_checkpoint(tmp_path) == str(first)
    snapshot = {p.name: p.read_bytes() for p in first.iterdir()}

    monkeypatch.setattr(samora.persistence, "save_file", real_save)  # space freed
    result = train(
        adapted_model(), None, dataset, output_dir=tmp_path, max_steps=3, save_steps=1, resume=True, **COMMON
    )
    assert result.resumed_from == str(first) and result.global_step == 3
    assert {p.name: p.read_bytes() for p in first.iterdir()} == snapshot
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-3")


def test_load_adapter_weights_refuses_another_config(tmp_path):
    samora.save_adapter(adapted_model(), tmp_path)
    other = adapted_model(tasks=[*TASKS, "delta"])
    with pytest.raises(ValueError, match="same config"):
        load_adapter_weights(other, tmp_path)
    smaller = adapted_model(r=2)
    with pytest.raises(ValueError, match="does not fit"):
        load_adapter_weights(smaller, tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="checksum"):
        load_adapter_weights(adapted_model(), tmp_path)


def test_trainer_saves_the_gathered_state_dict_that_fsdp_and_zero3_hand_it(tmp_path):
    """Under FSDP / ZeRO-3, Trainer.save_model gathers the full state dict and passes it to _save;
    this rank's own adapter tensors are shards. (accelerate enables FSDP only on GPUs, so the sharding
    is simulated: each adapter parameter keeps a flat piece, as ZeRO-3 leaves it.)"""
    from transformers import TrainingArguments

    from samora.training import SamoraTrainer

    model = adapted_model(perturb=0.1)
    gathered = {key: value.clone() for key, value in model.state_dict().items()}
    expected = adapter_tensors(model)
    trainer = SamoraTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to="none"))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.flatten()[:1].clone()
    trainer._save(str(tmp_path / "gathered"), state_dict=gathered)
    saved = adapter_tensors(samora.load_adapter(_fresh_base(), tmp_path / "gathered"))
    assert saved.keys() == expected.keys() and all(torch.equal(saved[k], expected[k]) for k in expected)
    with pytest.raises(ValueError, match="stage3_gather_16bit_weights_on_model_save"):
        trainer._save(str(tmp_path / "dummy"), state_dict={})  # what the Trainer passes when ZeRO-3 cannot gather
