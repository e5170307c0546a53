"""``train``'s settings object: keyword options over ``settings``, TrainingArguments fields passed on,
one home for the logging default."""

from __future__ import annotations

import dataclasses

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
    with pytest.raises(ValueError, match="warmup_ratio is a fraction"):
        TrainSettings(warmup_ratio=1.0)
    with pytest.raises(ValueError, match=r"progress must be one of \('bar', 'lines'\)"):
        TrainSettings(progress="dots")


def test_the_logging_default_lives_in_one_place():
    from samora.run.sections import TrainSection

    assert TrainSettings().logging_steps == TrainSection().logging_steps == 5  # what `samora train` always used


def test_the_run_configuration_and_train_agree_on_every_shared_default():
    from samora.run.sections import TrainSection

    section = TrainSection()
    settings = TrainSettings()
    settings_fields = {f.name for f in dataclasses.fields(TrainSettings)}
    shared = [field.name for field in dataclasses.fields(TrainSection) if field.name in settings_fields]
    assert len(shared) >= 17, shared  # both use TrainingArguments' names: a renamed field would drop out
    differing = {
        name: (getattr(section, name), getattr(settings, name))
        for name in shared
        if getattr(section, name) != getattr(settings, name)
    }
    assert differing == {"resume": (True, False)}  # the CLI resumes an unfinished run folder; train() is told to
