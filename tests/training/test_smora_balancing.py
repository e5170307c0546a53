"""SMoRA's load-balancing bias under the real Trainer: one update per optimizer step, every token once."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model
from tiny_data import TASKS, Collator, tiny_dataset
from transformers import TrainingArguments

import samora
from samora.training import SamoraTrainer


@pytest.mark.parametrize("reentrant", [False, True])
def test_bias_moves_once_per_step_from_the_load_of_all_micro_batches(tmp_path, reentrant):
    model = samora.get_model(tiny_model(), samora.SMoRAConfig(r=8, top_k=2, dropout=0.0, tasks=TASKS,
                                                                bias_update_rate=0.25))
    layers = list(model.samora_adapter.layers.values())
    loads, tokens = [], []
    original = model.samora_adapter.after_optimizer_step

    def remember_load_then_update():
        loads.append(torch.stack([layer.smora_load.clone() for layer in layers]))
        original()

    model.samora_adapter.after_optimizer_step = remember_load_then_update
    model.register_forward_pre_hook(lambda _m, _a, kwargs: tokens.append(kwargs["input_ids"].numel()), with_kwargs=True)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, learning_rate=1e-2, save_strategy="no",
                             report_to="none", disable_tqdm=True, use_cpu=True, seed=41,
                             activation_checkpointing=True,
                             activation_checkpointing_kwargs={"use_reentrant": reentrant})
    SamoraTrainer(model=model, args=args, train_dataset=tiny_dataset(8), data_collator=Collator()).train()

    assert len(loads) == 2 and len(tokens) == 4
    for step, load in enumerate(loads):  # every (padded) token of both micro-batches, counted once
        assert load.sum(-1).eq(2 * (tokens[2 * step] + tokens[2 * step + 1])).all()
    expected = sum(0.25 * torch.sign(load.float().mean(-1, keepdim=True) - load.float()) for load in loads)
    assert torch.equal(torch.stack([layer.smora_bias for layer in layers]), expected)
    assert expected.abs().sum() > 0
