"""Divergence is a failure: non-finite losses or gradients stop training (or skip the step); a NaN adapter
is never saved."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TrainerCallback

from samora.training import SamoraTrainer, TrainingDiverged, train
from tests.helpers import Collator, adapted_model, adapter_tensors, tiny_dataset

COMMON = dict(
    per_device_train_batch_size=4, logging_steps=1, data_collator=Collator(), disable_tqdm=True, warmup_ratio=0.0
)


class PoisonStep(TrainerCallback):
    """Makes the adapter's output NaN during optimizer step ``step`` (1-based); records the adapter around it."""

    def __init__(self, model, step: int) -> None:
        self.model, self.step, self.poisoned = model, step, False
        self.before = self.after = None
        layer = next(iter(model.samora_adapter.layers.values()))
        layer.register_forward_hook(lambda _m, _a, out: out * math.nan if self.poisoned else out)

    def on_step_begin(self, args, state, control, **kwargs):
        self.poisoned = state.global_step + 1 == self.step
        if self.poisoned:
            self.before = adapter_tensors(self.model)

    def on_step_end(self, args, state, control, **kwargs):
        if self.poisoned:
            self.after = adapter_tensors(self.model)
        self.poisoned = False


def test_huge_learning_rate_stops_with_the_step_and_the_causes(tmp_path):
    model = adapted_model()
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+ of 6.*learning rate.*alpha"):
        train(
            model, None, tiny_dataset(16), output_dir=tmp_path, max_steps=6, learning_rate=1e10, save_steps=1, **COMMON
        )
    assert not (tmp_path / "adapter_model.safetensors").exists()  # no final adapter
    for checkpoint in tmp_path.glob("checkpoint-*"):  # every checkpoint written holds finite weights
        from safetensors.torch import load_file

        assert all(torch.isfinite(t).all() for t in load_file(checkpoint / "adapter_model.safetensors").values())
    assert all(torch.isfinite(t).all() for t in adapter_tensors(model).values())  # the last finite step's weights


def test_a_nan_step_stops_before_the_optimizer_applies_it(tmp_path):
    model = adapted_model(perturb=0.1)
    poison = PoisonStep(model, step=2)
    with pytest.raises(TrainingDiverged, match=r"step 2 of 4: 1 non-finite micro-batch loss"):
        train(
            model,
            None,
            tiny_dataset(16),
            output_dir=tmp_path,
            max_steps=4,
            learning_rate=1e-2,
            callbacks=[poison],
            **COMMON,
        )
    assert all(torch.equal(poison.before[k], v) for k, v in adapter_tensors(model).items())


def test_skip_drops_the_step_and_trains_on(tmp_path):
    model = adapted_model(perturb=0.1)
    poison = PoisonStep(model, step=2)
    result = train(
        model,
        None,
        tiny_dataset(16),
        output_dir=tmp_path,
        max_steps=4,
        learning_rate=1e-2,
        callbacks=[poison],
        on_nonfinite="skip",
        **COMMON,
    )
    assert result.global_step == 4
    assert all(torch.equal(poison.before[k], poison.after[k]) for k in poison.before)  # step 2 changed nothing
    assert any(not torch.equal(poison.after[k], v) for k, v in adapter_tensors(model).items())  # 3, 4 trained
    logs = [entry for entry in result.log_history if "nonfinite_skipped_steps" in entry]
    assert [entry["nonfinite_skipped_steps"] for entry in logs] == [0, 1, 1, 1, 1]  # 4 steps, then the summary
    assert all(math.isfinite(loss) for _, loss in result.loss_history if _ != 2)


def test_non_finite_gradients_with_a_finite_loss_stop_training(tmp_path):
    model = adapted_model(perturb=0.1)
    parameter = next(p for p in model.parameters() if p.requires_grad)
    parameter.register_hook(lambda grad: grad * math.inf)
    with pytest.raises(TrainingDiverged, match=r"step 1 of 2: a finite loss and 1 of \d+ gradient tensors"):
        train(model, None, tiny_dataset(8), output_dir=tmp_path, max_steps=2, learning_rate=1e-2, **COMMON)


def test_a_nan_adapter_is_never_saved(tmp_path):
    from transformers import TrainingArguments

    model = adapted_model()
    arguments = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = SamoraTrainer(model=model, args=arguments)
    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad).view(-1)[0] = math.inf
    with pytest.raises(TrainingDiverged, match="NaN or infinite values in 1 of"):
        trainer._save(str(tmp_path / "final"))
    assert not (tmp_path / "final").exists()
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        SamoraTrainer(model=model, args=arguments, on_nonfinite="ignore")


def test_train_turns_the_trainer_nan_filter_off_unless_skipping(tmp_path, monkeypatch):
    seen = []
    real_init = SamoraTrainer.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen.append(self.args.logging_nan_inf_filter)

    monkeypatch.setattr(SamoraTrainer, "__init__", spy)
    for action in ("stop", "skip"):
        train(
            adapted_model(),
            None,
            tiny_dataset(4),
            output_dir=tmp_path / action,
            max_steps=1,
            on_nonfinite=action,
            **COMMON,
        )
    assert seen == [False, True]
