"""``train:`` keys that samora does not define reach TrainingArguments; its own names are refused."""

from __future__ import annotations

import pytest
import torch
import yaml

from samora.run.run_config import ConfigError, config_from_dict, load_run_config


def test_a_trainingarguments_field_passes_through_and_round_trips(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"max_steps": 3, "optim": "adafactor", "adam_beta2": 0.99}}))
    config = load_run_config(str(path), ["train.max_grad_norm=1", "train.report_to=tensorboard"])
    assert config.train.training_arguments == {"optim": "adafactor", "adam_beta2": 0.99, "max_grad_norm": 1.0}
    assert isinstance(config.train.training_arguments["max_grad_norm"], float)  # coerced like samora's own keys
    assert config.train.max_steps == 3 and config.train.report_to == "tensorboard"
    saved = yaml.safe_load(yaml.safe_dump(config.to_dict()))  # what config.yaml holds
    assert saved["train"]["training_arguments"]["max_grad_norm"] == 1.0
    assert config_from_dict(saved) == config
    # an override of a saved configuration: the flat key wins over the stored one
    resaved = tmp_path / "saved.yaml"
    resaved.write_text(yaml.safe_dump(config.to_dict()))
    again = load_run_config(str(resaved), ["train.max_grad_norm=0.5", "train.training_arguments.adam_beta2=0.9"])
    assert again.train.training_arguments == {"optim": "adafactor", "adam_beta2": 0.9, "max_grad_norm": 0.5}


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.output_dir=/tmp/x"], "use output_dir instead"),
        (["train.bf16=true"], "use train.precision instead"),
        (["train.logging_dir=/tmp/tb"], "TensorBoard writes into <run folder>/tensorboard"),
        (
            ["train.training_arguments={learning_rate: 0.1}"],
            "learning_rate is samora's own key; set train.learning_rate",
        ),
        (
            ["train.learnig_rate=1e-4"],
            r"unknown key\(s\) \['train.learnig_rate'\] \(did you mean train.learning_rate\?\)"
            r".*any field of transformers.TrainingArguments",
        ),
        (["train.max_grad_norm=big"], "train.max_grad_norm must be a finite number, got 'big'"),
        (
            ["train.optim=adamw_nosuch"],
            "train.optim: transformers.TrainingArguments refuses it: adamw_nosuch is not a valid",
        ),
        (["train.training_arguments=[1]"], "train.training_arguments must be a mapping, got \\[1\\]"),
        (["train.precision=fp8"], "train.precision must be one of 'auto'"),
        (["train.save_total_limit=0"], "train.save_total_limit must be an int > 0 or null"),
        (["train.report_to=[tensorboard, nosuch]"], r"train.report_to: unknown integration\(s\) \['nosuch'\]"),
    ],
)
def test_refused_and_bad_keys_name_what_to_use(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_run_config(None, overrides)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused only without a CUDA GPU")
def test_fp16_without_a_gpu_is_refused_before_the_model_loads():
    with pytest.raises(ConfigError, match="train.precision must be fp32 or bf16 on a machine without a CUDA GPU"):
        load_run_config(None, ["train.precision=fp16"])
