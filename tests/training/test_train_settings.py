"""``train``'s settings object: keyword options over ``settings``, TrainingArguments fields passed on,
the old ``grad_accum`` name accepted with a warning, one home for the logging default."""

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
    settings = TrainSettings(max_steps=3, batch_size=4, logging_steps=3, learning_rate=1e-2)
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


def test_grad_accum_is_the_deprecated_name_of_gradient_accumulation_steps(tmp_path, monkeypatch):
    seen = trainer_arguments(monkeypatch)
    common = dict(max_steps=1, batch_size=2, data_collator=Collator(), disable_tqdm=True)
    with pytest.warns(FutureWarning, match=r"grad_accum=\.\.\.\) is deprecated.*gradient_accumulation_steps"):
        train(adapted_model(), None, tiny_dataset(4), output_dir=tmp_path / "old", grad_accum=2, **common)
    train(adapted_model(), None, tiny_dataset(4), output_dir=tmp_path / "new", gradient_accumulation_steps=2, **common)
    assert [arguments.gradient_accumulation_steps for arguments in seen] == [2, 2]
    with pytest.raises(ValueError, match="give gradient_accumulation_steps only"):
        train(adapted_model(), None, tiny_dataset(4), output_dir=tmp_path, grad_accum=2, gradient_accumulation_steps=2)


def test_settings_refuse_bad_values_with_the_valid_ones():
    with pytest.raises(ValueError, match="warmup_ratio is a fraction"):
        TrainSettings(warmup_ratio=1.0)
    with pytest.raises(ValueError, match=r"progress must be one of \('bar', 'lines'\)"):
        TrainSettings(progress="dots")


def test_the_logging_default_lives_in_one_place():
    from samora.run.run_config import TrainSection

    assert TrainSettings().logging_steps == TrainSection().logging_steps == 5  # what `samora train` always used


# TrainSection keys and the TrainSettings field each sets (samora.run.pipeline._train_settings)
SECTION_TO_SETTINGS = {
    "num_train_epochs": "num_epochs",
    "per_device_train_batch_size": "batch_size",
    "lr_scheduler_type": "lr_scheduler",
}


def test_the_run_configuration_and_train_agree_on_every_shared_default():
    from samora.run.run_config import TrainSection

    section = TrainSection()
    settings = TrainSettings()
    shared = {
        field.name: SECTION_TO_SETTINGS.get(field.name, field.name)
        for field in dataclasses.fields(TrainSection)
        if SECTION_TO_SETTINGS.get(field.name, field.name) in {f.name for f in dataclasses.fields(TrainSettings)}
    }
    assert len(shared) >= 15, shared  # a renamed field would silently drop out of the comparison
    differing = {
        key: (getattr(section, key), getattr(settings, name))
        for key, name in shared.items()
        if getattr(section, key) != getattr(settings, name)
    }
    assert differing == {"resume": (True, False)}  # the CLI resumes an unfinished run folder; train() is told to
