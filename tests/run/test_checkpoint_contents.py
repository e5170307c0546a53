"""Checkpoints hold the adapter and the trainer state only, the tokenizer is written once per run, and a
full disk is a clear error naming the folder and the space needed (issue #24, defect 9)."""

from __future__ import annotations

import errno

import pytest
import torch

from samora.training import train
from tests.helpers import Collator, adapted_model, tiny_dataset

SETTINGS = dict(per_device_train_batch_size=4, data_collator=Collator(), disable_tqdm=True, logging_steps=1)


def test_checkpoints_hold_no_tokenizer_and_the_final_adapter_has_it(tmp_path, smollm2_tokenizer):
    train(
        adapted_model(), smollm2_tokenizer, tiny_dataset(8), output_dir=tmp_path, max_steps=2, save_steps=1, **SETTINGS
    )
    for step in (1, 2):
        names = {p.name for p in (tmp_path / f"checkpoint-{step}").iterdir()}
        assert {"adapter_model.safetensors", "optimizer.pt", "trainer_state.json"} <= names
        assert not any(name.startswith(("tokenizer", "special_tokens", "vocab", "merges")) for name in names), names
    assert (tmp_path / "tokenizer.json").is_file() or (tmp_path / "tokenizer_config.json").is_file()


def test_a_full_disk_names_the_folder_and_the_space_needed(tmp_path, monkeypatch):
    real_save = torch.save

    def disk_fills_on_the_optimizer(obj, path, *args, **kwargs):
        if str(path).endswith("optimizer.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_on_the_optimizer)
    with pytest.raises(
        OSError, match=rf"the disk holding {tmp_path} is full: a checkpoint needs about [\d.]+ MB"
    ) as err:
        train(adapted_model(), None, tiny_dataset(8), output_dir=tmp_path, max_steps=2, save_steps=1, **SETTINGS)
    assert err.value.errno == errno.ENOSPC and "rerun the same command: it resumes" in str(err.value)
