"""The run configuration: presets, YAML, overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from samora.run.run_config import ConfigError, load_run_config, preset_names


def test_every_preset_loads_and_builds_its_adapter_config():
    assert {"demo", "paper-commonsense", "paper-glue"} <= set(preset_names())
    for name in preset_names():
        config = load_run_config(preset=name)
        assert config.adapter_config(["a", "b"]).tasks == ["a", "b"]


def test_yaml_then_overrides_in_order(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("adapter: {method: lora, r: 4}\ntrain: {learning_rate: 1.0e-3, max_steps: 5}\n")
    config = load_run_config(
        str(path), ["train.learning_rate=3e-4", "adapter.r=16", "data.tasks=[boolq, piqa]"], preset="demo"
    )
    assert config.adapter["method"] == "lora" and config.adapter["r"] == 16  # file, then override
    assert "num_experts" not in config.adapter  # the preset's SAMoRA options went with its method
    same_method = load_run_config(overrides=["adapter.r=16"], preset="demo")
    assert same_method.adapter["num_experts"] == 3 and same_method.adapter["r"] == 16
    assert config.train.learning_rate == 3e-4 and config.train.max_steps == 5
    assert config.data.tasks == ["boolq", "piqa"]
    assert config.model.name == "smollm2-135m-instruct"  # from the preset
    assert load_run_config().model.name is None  # train: SmolLM2; eval: the adapter's recorded base


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["train.learnig_rate=1e-4"], r"unknown key\(s\) \['train.learnig_rate'\].*train.learning_rate"),
        (["optimizer.lr=1"], r"unknown key\(s\) \['optimizer'\]"),
        (
            ["train.per_device_train_batch_size=eight"],
            "train.per_device_train_batch_size must be an int > 0, got 'eight'",
        ),
        (["train.per_device_train_batch_size=0"], "train.per_device_train_batch_size must be an int > 0"),
        (["eval.protocol=beam"], "eval.protocol must be 'loglik' or 'generate'"),
        (["adapter.method=qlora"], r"adapter.method must be one of \[.*'samora'"),
        (["adapter.temperature=-1"], "adapter: temperature must be > 0"),
        (["adapter.tempreature=1"], r"adapter: SAMoRAConfig has no field\(s\) \['tempreature'\]"),
        (["train.learning_rate"], "must look like section.key=value"),
    ],
)
def test_bad_keys_and_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_run_config(overrides=overrides)


def test_missing_file_and_unknown_preset(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_run_config(str(tmp_path / "none.yaml"))
    with pytest.raises(ConfigError, match=r"unknown preset 'fast'.*demo"):
        load_run_config(preset="fast")
