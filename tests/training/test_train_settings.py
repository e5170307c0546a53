"""``train``'s settings object: keyword options over ``settings``, TrainingArguments fields passed on,
one definition of the settings with the run configuration."""

from __future__ import annotations

import pytest

from samora.training import SamoraTrainer, TrainSettings, train
from tests.helpers import Collator, adapted_model, tiny_dataset


def trainer_arguments(monkeypatch) -> list:
    """The ``TrainingArguments`` of every SamoraTrainer built from now on."""
    seen, real_init = [], SamoraTrainer.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen.append(self.args)

    monkeypatch.setattr(SamoraTrainer, "__init__", spy)
    return seen


def test_keyword_options_override_the_settings_and_other_fields_reach_the_trainer(tmp_path, monkeypatch):
    seen = trainer_arguments(monkeypatch)
    settings = TrainSettings(max_steps=3, per_device_train_batch_size=4, logging_steps=3, learning_rate=1e-2)
    result = train(
        adapted_model(),
        None,
        tiny_dataset(8),
        output_dir=tmp_path,
        settings=settings,
        logging_steps=1,
        max_grad_norm=0.5,
        data_collator=Collator(),
        disable_tqdm=True,
    )
    assert result.global_step == 3 and [step for step, _ in result.loss_history] == [1, 2, 3]
    (arguments,) = seen
    assert arguments.logging_steps == 1 and arguments.learning_rate == 1e-2 and arguments.max_grad_norm == 0.5
    assert settings.logging_steps == 3  # the caller's object is not changed


def test_settings_refuse_bad_values_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"warmup_ratio \(a fraction of the training steps\) must be in \[0, 1\)"):
        TrainSettings(warmup_ratio=1.0)
    with pytest.raises(ValueError, match="progress must be 'bar' or 'lines', got 'dots'"):
        TrainSettings(progress="dots")
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):  # the run configuration's rule, too
        TrainSettings(learning_rate=-1e-4)
