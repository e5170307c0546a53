"""A damaged or half-written last checkpoint is skipped with a warning; resuming from the one before it
still ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch

from samora.training import last_complete_checkpoint, train
from samora.training.checkpoints import checkpoint_problem
from tests.helpers import Collator, adapted_model, adapter_tensors, tiny_dataset

COMMON = dict(
    per_device_train_batch_size=4,
    logging_steps=1,
    data_collator=Collator(),
    learning_rate=1e-2,
    disable_tqdm=True,
    max_steps=4,
    save_steps=1,
)


def flip_a_byte(path, where: float = 1.0):
    """Flip the byte at fraction ``where`` of the file (1.0: the last byte)."""
    data = bytearray(path.read_bytes())
    data[min(int(len(data) * where), len(data) - 1)] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {
    "adapter weights bit-flipped": (lambda c: flip_a_byte(c / "adapter_model.safetensors"), "adapter is damaged"),
    "optimizer truncated": (lambda c: truncate(c / "optimizer.pt"), "optimizer.pt is damaged"),
    "rng state bit-flipped": (lambda c: flip_a_byte(c / "rng_state.pth", 0.5), "rng_state.pth is damaged"),
    "trainer state missing": (lambda c: (c / "trainer_state.json").unlink(), "was not finished"),
    "adapter config missing": (lambda c: (c / "adapter_config.json").unlink(), None),
}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    folder = tmp_path_factory.mktemp("straight")
    model = adapted_model(dropout=0.1)
    train(model, None, tiny_dataset(16), output_dir=folder, **COMMON)
    return folder, adapter_tensors(model)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_last_checkpoint_is_skipped_and_the_previous_one_resumes_exactly(damage, straight, tmp_path, caplog):
    folder, expected = straight
    run = tmp_path / "run"
    shutil.copytree(folder, run)
    shutil.rmtree(run / "checkpoint-4")  # killed during step 4
    apply, problem = DAMAGES[damage]
    apply(run / "checkpoint-3")
    if problem is not None:
        assert problem in checkpoint_problem(run / "checkpoint-3")
    with caplog.at_level(logging.WARNING, logger="samora.training.checkpoints"):
        found = last_complete_checkpoint(run)
    if problem is None:  # an adapter-less checkpoint is the FSDP / DeepSpeed layout: nothing to check there
        assert found == str(run / "checkpoint-3")
        return
    assert found == str(run / "checkpoint-2")
    assert f"skipping checkpoint {run / 'checkpoint-3'}" in caplog.text and problem in caplog.text
    model = adapted_model(dropout=0.1, adapter_seed=7)
    result = train(model, None, tiny_dataset(16), output_dir=run, resume=True, **COMMON)
    assert result.resumed_from == str(run / "checkpoint-2") and result.global_step == 4
    got = adapter_tensors(model)
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_intact_checkpoints_have_no_problem(straight):
    folder, _ = straight
    assert all(checkpoint_problem(folder / f"checkpoint-{n}") is None for n in range(1, 5))
    assert last_complete_checkpoint(folder) == str(folder / "checkpoint-4")
