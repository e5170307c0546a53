"""Training and analysis on the real SmolLM2-135M (small shapes, a few steps)."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset

import samora
from samora.analysis import analyze
from samora.training import train
from tests.helpers import Collator

TASKS = ["boolq", "piqa"]
TEXTS = [
    ("boolq", "Question: is the sky blue on a clear day? Answer: yes"),
    ("piqa", "Goal: open a jar. Solution: twist the lid counter-clockwise."),
    ("boolq", "Question: do fish breathe air through lungs? Answer: no"),
    ("piqa", "Goal: dry wet shoes. Solution: stuff them with newspaper."),
]


@pytest.mark.real_model
def test_smollm2_trains_with_checkpointing_and_accumulation_then_analyzes(tmp_path):
    from samora.models.smollm2 import load_smollm2

    try:
        model, tokenizer = load_smollm2()
    except FileNotFoundError as err:
        pytest.fail(f"the real model is part of the test set-up: {err}")
    model = samora.get_model(model, samora.SAMoRAConfig(r=4, tasks=TASKS, target_modules=["q_proj", "v_proj"]))
    rows = {"input_ids": [], "attention_mask": [], "labels": [], "task_ids": []}
    for task, text in TEXTS:
        ids = tokenizer(text)["input_ids"][:24]
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * len(ids))
        rows["labels"].append(ids)
        rows["task_ids"].append(TASKS.index(task))
    dataset = Dataset.from_dict(rows)
    result = train(
        model,
        tokenizer,
        dataset,
        output_dir=tmp_path / "run",
        max_steps=2,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=2,
        gradient_checkpointing=True,
        logging_steps=1,
        learning_rate=1e-3,
        data_collator=Collator(),
        disable_tqdm=True,
    )
    assert result.global_step == 2 and all(torch.isfinite(torch.tensor(loss)) for _, loss in result.loss_history)
    assert "router/load_entropy" in result.log_history[0] and result.tokens_per_second > 0
    assert (tmp_path / "run" / "adapter_model.safetensors").stat().st_size < 5_000_000  # adapter only
    batch = Collator()([dataset[i] for i in range(4)])
    results = analyze(model, [batch], tmp_path / "analysis", heatmap_layers=4)
    assert len(results["routing"]["usage"]) == 60 and set(results["routing"]["tokens_per_task"]) == set(TASKS)
    assert len(results["task_gates"]) == 60
