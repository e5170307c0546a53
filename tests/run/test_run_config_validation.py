"""Every config value is checked before anything loads: one row per bad value, with its expected message."""

from __future__ import annotations

import os

import pytest

import samora
from samora.run.run_config import ConfigError, load_run_config

BAD_VALUES = [
    # the adapter section is coerced like the others, against the method's fields
    (["adapter.method=lora", "adapter.alpha=.nan"], "adapter.alpha must be a finite number, got nan"),
    (["adapter.method=hydralora", "adapter.alpha=.inf"], "adapter.alpha must be a finite number, got inf"),
    (["adapter.method=lora", "adapter.alpha=-1"], r"adapter: alpha \(the update's scale numerator.*must be > 0"),
    (["adapter.lambda_orth=1e-3x"], "adapter.lambda_orth must be a number >= 0, got '1e-3x'"),
    (["adapter.lambda_orth=.nan"], "adapter.lambda_orth must be a finite number"),
    (["adapter.r=8.5"], "adapter.r must be a positive int, got 8.5"),
    (["adapter.tasks=piqa"], "adapter.tasks is set from data.tasks"),
    (["adapter.method=[lora]"], "adapter.method must be one of"),
    # numbers: finiteness and range
    (["train.learning_rate=.nan"], "train.learning_rate must be a finite number, got nan"),
    (["train.learning_rate=-1e-4"], "train.learning_rate must be >= 0, got -0.0001"),
    (["train.num_train_epochs=.inf"], "train.num_train_epochs must be a finite number, got inf"),
    (["train.weight_decay=-5"], "train.weight_decay must be >= 0"),
    (["train.save_steps=-1"], "train.save_steps must be an int > 0 or null, got -1"),
    (["train.save_steps=0"], "train.save_steps must be an int > 0 or null, got 0"),
    (["train.logging_steps=0"], "train.logging_steps must be an int > 0, got 0"),
    (["train.gradient_accumulation_steps=0"], "train.gradient_accumulation_steps must be an int > 0"),
    (
        ["train.warmup_ratio=1"],
        r"train.warmup_ratio \(a fraction of the training steps\) must be in \[0, 1\), got 1.0",
    ),
    (["train.seed=-1"], r"train.seed must be an int in \[0, 4294967296\), got -1"),
    (["train.lr_scheduler_type=triangle"], "train.lr_scheduler_type must be one of .*'cosine'"),
    (["train.on_nonfinite=ignore"], "train.on_nonfinite must be 'stop' or 'skip', got 'ignore'"),
    (["train.resume=maybe"], "train.resume must be True or False, got 'maybe'"),
    (["eval.batch_size=0"], "eval.batch_size must be an int > 0"),
    (["eval.num_beams=0"], "eval.num_beams must be a positive int, got 0"),
    (["eval.max_new_tokens=0"], "eval.max_new_tokens must be an int > 0"),
    (["eval.limit=0"], "eval.limit must be an int > 0 or null"),
    (["data.max_length=0"], "data.max_length must be an int > 0"),
    (["data.temperature=0", "data.sampling=temperature"], "data.temperature must be > 0 or null"),
    (["data.sampling=temperature"], "data.temperature must be set"),
    (["data.temperature=2"], "data.temperature must be null unless data.sampling is temperature"),
    (["data.temperature=.nan"], "data.temperature must be a finite number"),
    # names checked against their registries
    (["eval.split=bogus"], "eval.split: Task 'boolq' has no labelled split 'bogus'"),
    (["data.template=bogus"], "data.template: .*bogus"),
    (["data.tasks=[boolq, nosuchtask]"], "data.tasks: Unknown task 'nosuchtask'"),
    (["eval.protocol=beam"], "eval.protocol must be 'loglik' or 'generate', got 'beam'"),
    (["model.dtype=int8"], "model.dtype must be one of 'auto', 'float32', 'bfloat16', 'float16', got 'int8'"),
]


@pytest.mark.parametrize("overrides,message", BAD_VALUES, ids=[" ".join(row[0]) for row in BAD_VALUES])
def test_each_bad_value_is_refused_with_its_message(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_run_config(overrides=["data.tasks=[boolq, piqa]", *overrides])


def test_adapter_values_are_coerced_like_every_other_section():
    config = load_run_config(overrides=["adapter.lambda_orth=1e-3", "adapter.temperature=1"])
    assert config.adapter["lambda_orth"] == 1e-3 and isinstance(config.adapter["lambda_orth"], float)
    assert isinstance(config.adapter["temperature"], float)
    assert config.adapter_config(["boolq"]).lambda_orth == 1e-3


def test_output_dir_that_is_a_file_or_unwritable_is_a_clear_error(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("")
    with pytest.raises(ConfigError, match="output_dir .* is a file, not a folder"):
        load_run_config(overrides=[f"output_dir={file}"])
    with pytest.raises(ConfigError, match="output_dir .* cannot be created: .* is a file"):
        load_run_config(overrides=[f"output_dir={file / 'run'}"])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(ConfigError, match="output_dir .* is not writable"):
            load_run_config(overrides=[f"output_dir={locked / 'run'}"])
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"tasks": "piqa"}, r"tasks must be a list of task names, got the string 'piqa'; write tasks=\['piqa'\]"),
        ({"tasks": ["piqa"], "alpha": float("nan")}, "alpha must be a finite number, got nan"),
        ({"tasks": ["piqa"], "alpha": 0.0}, "alpha .* must be > 0"),
        ({"tasks": ["piqa"], "dropout": float("inf")}, "dropout must be a finite number"),
    ],
)
def test_adapter_configs_refuse_a_task_string_and_non_finite_numbers(options, message):
    for config_cls in (samora.LoRAConfig, samora.MoELoRAConfig):
        with pytest.raises(ValueError, match=message):
            config_cls(**options)


def test_what_is_read_from_transformers_source_is_what_it_defines():
    """The scheduler names and TrainingArguments fields the CLI checks before torch loads are the installed
    transformers' own (read from its source, never imported there)."""
    import dataclasses
    import typing

    from transformers import TrainingArguments
    from transformers.trainer_utils import SchedulerType

    from samora.training.transformers_source import scheduler_types, training_argument_hints

    assert scheduler_types() == tuple(s.value for s in SchedulerType)
    hints = training_argument_hints()
    assert list(hints) == [f.name for f in dataclasses.fields(TrainingArguments) if f.init]
    real = typing.get_type_hints(TrainingArguments)
    assert {name: hint for name, hint in hints.items() if hint is not None} == {
        name: real[name] for name, hint in hints.items() if hint is not None
    }
    assert hints["max_grad_norm"] is float and hints["lr_scheduler_type"] is None  # an enum: not plain


def test_every_method_keeps_the_rules_of_the_shared_adapter_fields():
    """adapter.r, adapter.dropout... are checked against AdapterConfig's rules before the method registry
    (and torch) loads, which is right only while no method declares other rules for them."""
    shared = samora.config.field_rules(samora.config.AdapterConfig)
    for config_cls, _ in samora.METHODS.values():
        rules = samora.config.field_rules(config_cls)
        assert {name: rules[name] for name in shared} == shared, config_cls.__name__
