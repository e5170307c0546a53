"""Resume never trains past max_steps (issue #24, defect 1): a run killed after its last checkpoint
(here the one at max_steps, before the run folder's metrics.json) resumes into nothing left to train
and ends bit-identical to the uninterrupted run, whatever the schedule."""

from __future__ import annotations

import pytest
import torch

from samora.training import train
from tests.helpers import Collator, adapted_model, adapter_tensors, tiny_dataset

# 16 examples in batches of 4: 4 steps per epoch, so max_steps=6 ends inside the second epoch, where the
# Trainer, resumed at step 6, would start one more step before checking its limit
SETTINGS = dict(
    per_device_train_batch_size=4,
    logging_steps=1,
    data_collator=Collator(),
    learning_rate=1e-2,
    disable_tqdm=True,
    max_steps=6,
    save_steps=3,
)


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_a_kill_after_the_last_checkpoint_resumes_bit_identical(schedule, tmp_path):
    uninterrupted = adapted_model(dropout=0.1)
    train(uninterrupted, None, tiny_dataset(16), output_dir=tmp_path, lr_scheduler_type=schedule, **SETTINGS)
    assert (tmp_path / "checkpoint-6").is_dir()  # the state a kill right after the last checkpoint leaves
    expected = adapter_tensors(uninterrupted)

    resumed = adapted_model(dropout=0.1, adapter_seed=7)  # other initial weights: all must come from the checkpoint
    result = train(
        resumed, None, tiny_dataset(16), output_dir=tmp_path, resume=True, lr_scheduler_type=schedule, **SETTINGS
    )
    assert result.resumed_from == str(tmp_path / "checkpoint-6")
    assert result.global_step == 6
    got = adapter_tensors(resumed)
    assert all(torch.equal(expected[name], got[name]) for name in expected)
