"""train.on_nonfinite=skip reports skipped steps as skipped, never as loss 0 (issue #24, defect 5): the
logged and final losses are means over the trained steps only."""

from __future__ import annotations

import math

import pytest
from transformers import TrainerCallback

from samora.training import train
from tests.helpers import Collator, adapted_model, tiny_dataset

SETTINGS = dict(
    per_device_train_batch_size=4,
    data_collator=Collator(),
    disable_tqdm=True,
    warmup_ratio=0.0,
    max_steps=4,
    learning_rate=1e-2,
    on_nonfinite="skip",
)


class PoisonSteps(TrainerCallback):
    """Makes the adapter's output NaN during the optimizer steps ``steps`` (1-based)."""

    def __init__(self, model, steps: set[int]) -> None:
        self.steps, self.poisoned = steps, False
        layer = next(iter(model.samora_adapter.layers.values()))
        layer.register_forward_hook(lambda _m, _a, out: out * math.nan if self.poisoned else out)

    def on_step_begin(self, args, state, control, **kwargs):
        self.poisoned = state.global_step + 1 in self.steps


def skipping_run(tmp_path, logging_steps: int):
    model = adapted_model(perturb=0.1)
    return train(
        model,
        None,
        tiny_dataset(16),
        output_dir=tmp_path / f"log-{logging_steps}",
        logging_steps=logging_steps,
        callbacks=[PoisonSteps(model, {1, 2})],
        **SETTINGS,
    )


def test_skipped_steps_are_left_out_of_the_losses_and_counted(tmp_path):
    every_step = skipping_run(tmp_path, logging_steps=1)
    assert [step for step, _ in every_step.loss_history] == [3, 4]  # steps 1 and 2 logged no loss
    trained = [loss for _, loss in every_step.loss_history]
    assert every_step.train_loss == pytest.approx(sum(trained) / 2, rel=1e-6)
    summary = every_step.log_history[-1]
    assert summary["nonfinite_skipped_steps"] == 2 and summary["train_loss"] == every_step.train_loss

    one_window = skipping_run(tmp_path, logging_steps=4)  # the same training, one log for all 4 steps
    [(step, loss)] = one_window.loss_history
    assert step == 4 and loss == pytest.approx(every_step.train_loss, rel=1e-5)  # not diluted by the skipped steps
    assert one_window.train_loss == pytest.approx(every_step.train_loss, rel=1e-5)
