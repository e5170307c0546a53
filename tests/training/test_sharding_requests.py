"""FSDP or DeepSpeed asked for where accelerate does not set it up is an error, never a run that
silently trains with plain data parallelism (accelerate enables FSDP on GPUs only)."""

from __future__ import annotations

import pytest
from transformers import TrainingArguments

from samora.training.trainer import SamoraTrainer
from tests.helpers import Collator, adapted_model, tiny_dataset


def test_fsdp_from_an_accelerate_config_on_cpu_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch --config_file fsdp.yaml` sets
    arguments = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, max_steps=1, report_to="none")
    with pytest.raises(ValueError, match="FSDP was asked for .* would silently train without FSDP"):
        SamoraTrainer(model=adapted_model(), args=arguments, train_dataset=tiny_dataset(4), data_collator=Collator())
