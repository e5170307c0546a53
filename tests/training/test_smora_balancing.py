"""SMoRA's load-balancing bias under the real Trainer: one update per optimizer step, every real
token once, the same bias however the batch is padded or split across ranks and micro-batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TrainingArguments

import samora
from samora.training import SamoraTrainer, train
from tests.helpers import TASKS, Collator, run_on_two_processes, smora_model, tiny_dataset, tiny_model
from tests.training.smora_ddp_worker import OPTIONS, STEPS

WORKER = Path(__file__).resolve().parent / "smora_ddp_worker.py"


@pytest.mark.parametrize("reentrant", [False, True])
def test_bias_moves_once_per_step_from_the_load_of_all_micro_batches(tmp_path, reentrant):
    model = samora.get_model(
        tiny_model(), samora.SMoRAConfig(r=8, top_k=2, dropout=0.0, tasks=TASKS, bias_update_rate=0.25)
    )
    layers = list(model.samora_adapter.layers.values())
    loads, tokens = [], []
    original = model.samora_adapter.after_optimizer_step

    def remember_load_then_update():
        loads.append(torch.stack([layer.smora_load.clone() for layer in layers]))
        original()

    model.samora_adapter.after_optimizer_step = remember_load_then_update
    model.register_forward_pre_hook(
        lambda _m, _a, kwargs: tokens.append(int(kwargs["attention_mask"].sum())), with_kwargs=True
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        learning_rate=1e-2,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=41,
        activation_checkpointing=True,
        activation_checkpointing_kwargs={"use_reentrant": reentrant},
    )
    SamoraTrainer(model=model, args=args, train_dataset=tiny_dataset(8), data_collator=Collator()).train()

    assert len(loads) == 2 and len(tokens) == 4
    for step, load in enumerate(loads):  # every real token of both micro-batches, counted once, no padding
        assert load.sum(-1).eq(2 * (tokens[2 * step] + tokens[2 * step + 1])).all()
    expected = sum(0.25 * torch.sign(load.float().mean(-1, keepdim=True) - load.float()) for load in loads)
    assert torch.equal(torch.stack([layer.smora_bias for layer in layers]), expected)
    assert expected.abs().sum() > 0


def biases(model) -> dict[str, torch.Tensor]:
    from samora.adapter_files import adapter_state_dict

    return {k: v.clone() for k, v in adapter_state_dict(model).items() if k.endswith("smora_bias")}


def trained_bias(tmp_path, batch_size: int, grad_accum: int) -> dict[str, torch.Tensor]:
    model = smora_model()
    train(
        model,
        None,
        tiny_dataset(4 * STEPS, min_len=3, max_len=12),
        output_dir=tmp_path / f"{batch_size}x{grad_accum}",
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        data_collator=Collator(),
        **OPTIONS,
    )
    return biases(model)


def test_bias_is_the_same_for_one_process_and_two_and_for_any_accumulation(tmp_path):
    """1 process x batch 4, 1 process x (2 micro-batches of 2) and 2 processes x 2 pad differently."""
    run_on_two_processes(WORKER, tmp_path / "ddp", timeout=240)
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "ddp" / "adapter" / "adapter_model.safetensors"))
    two_processes = {k: v for k, v in saved.items() if k.endswith("smora_bias")}

    one_batch, accumulated = trained_bias(tmp_path, 4, 1), trained_bias(tmp_path, 2, 2)
    assert len(one_batch) == 8 and two_processes.keys() == one_batch.keys()
    assert sum(v.abs().sum() for v in one_batch.values()) > 0  # the bias moved
    for name, bias in one_batch.items():
        assert torch.equal(accumulated[name], bias), name
        assert torch.equal(two_processes[name], bias), name
