"""SamoraTrainer on the real HF Trainer: task ids, regulariser weight, per-step hooks, statistics."""

from __future__ import annotations

import inspect

import pytest
import torch
from transformers import TrainerCallback, TrainingArguments

from samora.analysis import task_gate_values
from samora.training import SamoraTrainer, train
from tests.helpers import (
    TASKS,
    Collator,
    adapted_model,
    adapter_tensors,
    checkpointing_arguments,
    tiny_dataset,
    tiny_model,
)


def arguments(tmp_path, **overrides) -> TrainingArguments:
    options = dict(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        optim="adamw_torch",
        seed=41,
    )
    return TrainingArguments(**(options | overrides))


class GradientsBeforeStep(TrainerCallback):
    """Keeps the accumulated gradients of the first optimizer step (before the optimizer uses them)."""

    def __init__(self) -> None:
        self.gradients = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.gradients is None:
            self.gradients = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_task_ids_survive_column_filtering_and_reach_every_layer(tmp_path):
    model = adapted_model(dropout=0.0)
    assert "task_ids" in inspect.signature(model.forward).parameters
    expected, checked = [], []

    def remember_batch(_module, _args, kwargs):
        expected.append(kwargs["input_ids"][:, 0] - 10)  # tiny_dataset(task_token=True) encodes the task

    def check_layer(layer, _args):
        assert layer.state.task_ids is not None, "the layer saw no task ids"
        checked.append(torch.equal(layer.state.task_ids_for(_args[0]), expected[-1]))

    model.register_forward_pre_hook(remember_batch, with_kwargs=True)
    for layer in model.samora_adapter.layers.values():
        layer.register_forward_pre_hook(check_layer)
    collator = Collator()
    trainer = SamoraTrainer(
        model=model,
        args=arguments(tmp_path, max_steps=3),
        train_dataset=tiny_dataset(12, task_token=True),
        data_collator=collator,
    )
    trainer.train()
    assert "task_ids" in trainer._signature_columns
    assert "task_ids" in collator.seen_keys and "task_name" not in collator.seen_keys
    assert len(expected) == 3 and len(checked) == 3 * len(model.samora_adapter.layers) and all(checked)


@pytest.mark.parametrize("loss_kwargs", [True, False], ids=["num_items_in_batch", "mean_per_micro_batch"])
@pytest.mark.parametrize("grad_accum", [1, 2])
def test_regularisers_count_once_per_optimizer_step(tmp_path, grad_accum, loss_kwargs):
    """One step's accumulated gradient equals the gradient of (task loss on all 8 examples + R once)."""
    length = (5, 9) if loss_kwargs else (8, 8)  # a per-micro-batch mean needs equal token counts to compare
    dataset = tiny_dataset(8, min_len=length[0], max_len=length[1])
    options = dict(dropout=0.0, lambda_orth=0.05, lambda_match=0.5)
    model = adapted_model(perturb=0.2, **options)
    if not loss_kwargs:
        model.accepts_loss_kwargs = False  # the Trainer then divides each micro-batch loss by grad_accum itself
    start = adapter_tensors(model)
    spy = GradientsBeforeStep()
    trainer = SamoraTrainer(
        model=model,
        args=arguments(
            tmp_path,
            max_steps=1,
            max_grad_norm=0.0,
            per_device_train_batch_size=8 // grad_accum,
            gradient_accumulation_steps=grad_accum,
        ),
        train_dataset=dataset,
        data_collator=Collator(),
        callbacks=[spy],
    )
    trainer.train()
    assert trainer.model_accepts_loss_kwargs is loss_kwargs
    assert model.samora_adapter.aux_scale == pytest.approx(1 / grad_accum if loss_kwargs else 1.0)

    def reference_gradients(with_regularisers: bool) -> dict[str, torch.Tensor]:
        reference = adapted_model(perturb=0.2, **options)
        assert all(torch.equal(v, start[k]) for k, v in adapter_tensors(reference).items())
        reference.samora_adapter.include_aux_in_loss = with_regularisers
        reference.train()
        reference(**Collator()([dataset[i] for i in range(len(dataset))])).loss.backward()
        return {n: p.grad for n, p in reference.named_parameters() if p.requires_grad}

    expected, without = reference_gradients(True), reference_gradients(False)
    assert expected.keys() == spy.gradients.keys()
    for name, gradient in spy.gradients.items():
        assert torch.allclose(gradient, expected[name], atol=1e-6, rtol=1e-4), name
    # The regularisers move these gradients far more than the tolerance: counting them twice would fail.
    assert max((expected[n] - without[n]).abs().max().item() for n in expected) > 1e-2


class StepCounter(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


@pytest.mark.parametrize("reentrant", [False, True])
def test_after_optimizer_step_once_per_step_with_accumulation_and_checkpointing(tmp_path, reentrant):
    model = adapted_model(dropout=0.0)
    handle = model.samora_adapter
    calls, forwards = [], []
    original = handle.after_optimizer_step
    handle.after_optimizer_step = lambda: (calls.append(1), original())[1]
    model.register_forward_pre_hook(lambda *_: forwards.append(1))
    counter = StepCounter()
    trainer = SamoraTrainer(
        model=model,
        args=arguments(
            tmp_path,
            max_steps=3,
            gradient_accumulation_steps=2,
            per_device_train_batch_size=2,
            **checkpointing_arguments(reentrant),
        ),
        train_dataset=tiny_dataset(16),
        data_collator=Collator(),
        callbacks=[counter],
    )
    trainer.train()
    assert model.model.gradient_checkpointing
    assert len(forwards) == 6 and counter.steps == 3 and len(calls) == 3


def test_gradient_checkpointing_trains_the_same_weights(tmp_path):
    def trained(checkpointing: bool) -> dict[str, torch.Tensor]:
        model = adapted_model(dropout=0.0)
        train(
            model,
            None,
            tiny_dataset(8),
            output_dir=tmp_path / str(checkpointing),
            max_steps=3,
            per_device_train_batch_size=4,
            gradient_checkpointing=checkpointing,
            data_collator=Collator(),
            learning_rate=1e-2,
            disable_tqdm=True,
        )
        return adapter_tensors(model)

    plain, checkpointed = trained(False), trained(True)
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6), name
    assert any(not torch.equal(plain[n], adapted_model(dropout=0.0).state_dict()[n]) for n in plain)


def test_router_statistics_reach_the_logs_and_are_sampled_only_on_logging_steps(tmp_path):
    model = adapted_model(dropout=0.0)
    recorded = []
    trainer_box = []
    model.register_forward_pre_hook(
        lambda *_: recorded.append((trainer_box[0].state.global_step + 1, model.samora_adapter.state.record_routing))
    )
    dataset = tiny_dataset(16)
    trainer = SamoraTrainer(
        model=model,
        args=arguments(tmp_path, max_steps=4, logging_steps=2),
        train_dataset=dataset,
        data_collator=Collator(),
    )
    trainer_box.append(trainer)
    trainer.train()
    assert recorded == [(1, False), (2, True), (3, False), (4, True)]
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in logs] == [2, 4]
    for entry in logs:
        assert 0.0 < entry["router/load_entropy"] <= 1.0
        assert 1 / 3 <= entry["router/max_expert_share"] <= 1.0
        assert entry["aux/orth"] > 0 and entry["aux/match"] > 0 and entry["tokens_per_second"] > 0
        present = [t for t in TASKS if f"router/usage/{t}/expert_0" in entry]  # tasks in the sampled batch
        assert present
        for task in present:
            shares = [entry[f"router/usage/{task}/expert_{e}"] for e in range(3)]
            assert sum(shares) == pytest.approx(1.0, abs=1e-9)
    gates = task_gate_values(model)  # the last log came after the last optimizer step
    for task in TASKS:
        assert logs[-1][f"gate/{task}"] == pytest.approx(sum(g[task] for g in gates.values()) / len(gates), abs=1e-6)
    assert logs[-1]["tokens_seen"] == sum(sum(row) for row in dataset["attention_mask"])


def test_train_returns_history_and_saves_the_adapter_only(tmp_path):
    import samora

    model = adapted_model(dropout=0.0)
    dataset = tiny_dataset(8)
    result = train(
        model,
        None,
        dataset,
        output_dir=tmp_path,
        max_steps=4,
        per_device_train_batch_size=4,
        logging_steps=2,
        data_collator=Collator(),
        learning_rate=1e-2,
        disable_tqdm=True,
    )
    assert result.global_step == 4 and [step for step, _ in result.loss_history] == [2, 4]
    assert result.tokens_seen == 2 * sum(sum(row) for row in dataset["attention_mask"])
    assert result.runtime_s > 0 and result.tokens_per_second == pytest.approx(result.tokens_seen / result.runtime_s)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "training_args.bin",
    ]
    loaded = samora.load_adapter(tiny_model(), tmp_path)
    assert all(torch.equal(v, adapter_tensors(model)[k]) for k, v in adapter_tensors(loaded).items())


def test_bf16_autocast_on_cpu_keeps_fp32_adapter(tmp_path):
    model = adapted_model(dropout=0.0)
    result = train(
        model,
        None,
        tiny_dataset(8),
        output_dir=tmp_path,
        max_steps=2,
        per_device_train_batch_size=4,
        precision="bf16",
        data_collator=Collator(),
        logging_steps=1,
        disable_tqdm=True,
    )
    assert all(torch.isfinite(torch.tensor(loss)) for _, loss in result.loss_history)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="get_model"):
        train(tiny_model(), None, tiny_dataset(4), output_dir=tmp_path, data_collator=Collator())
    with pytest.raises(ValueError, match="label_smoothing_factor"):
        SamoraTrainer(
            model=adapted_model(),
            args=arguments(tmp_path, label_smoothing_factor=0.1),
            train_dataset=tiny_dataset(4),
            data_collator=Collator(),
        )
    with pytest.raises(ValueError, match="no complete checkpoint"):
        train(adapted_model(), None, tiny_dataset(4), output_dir=tmp_path, resume=True, data_collator=Collator())
    with pytest.raises(ValueError, match="precision"):
        train(adapted_model(), None, tiny_dataset(4), output_dir=tmp_path, precision="fp8", data_collator=Collator())


def test_evaluation_loss_counts_the_regularisers_once(tmp_path):
    model = adapted_model(perturb=0.2, dropout=0.0, lambda_orth=0.05, lambda_match=0.5)
    evaluation = tiny_dataset(4, seed=7)
    result = train(
        model,
        None,
        tiny_dataset(8),
        output_dir=tmp_path,
        max_steps=2,
        per_device_train_batch_size=4,
        logging_steps=2,
        eval_dataset=evaluation,
        data_collator=Collator(),
        learning_rate=1e-2,
        disable_tqdm=True,
    )
    logged = [entry["eval_loss"] for entry in result.log_history if "eval_loss" in entry]
    assert len(logged) == 1
    model.eval()
    with torch.no_grad():
        expected = model(**Collator()([evaluation[i] for i in range(4)])).loss.item()
        regularisers = sum(model.samora_adapter.aux_losses().values()).item()
    assert regularisers > 1e-3 and logged[0] == pytest.approx(expected, abs=1e-5)
