"""Config layering (issue #24, defect 6): every layer changes only the keys it sets, a method switch
keeps the shared adapter keys and names the dropped ones, and overrides may follow flags."""

from __future__ import annotations

import logging

from samora.cli import build_parser, main
from samora.run.run_config import load_run_config


def test_a_method_override_keeps_the_files_shared_adapter_keys(tmp_path, caplog):
    path = tmp_path / "my.yaml"
    path.write_text(
        "adapter: {method: samora, r: 4, num_experts: 2, dropout: 0.1, target_modules: [q_proj, v_proj]}\n"
    )
    with caplog.at_level(logging.WARNING, logger="samora"):
        config = load_run_config(str(path), ["adapter.method=lora"])
    assert config.adapter == {"method": "lora", "r": 4, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}
    assert "adapter.num_experts" in caplog.text and "lora" in caplog.text


def test_a_method_override_over_a_preset_keeps_r_and_names_every_dropped_key(caplog):
    with caplog.at_level(logging.WARNING, logger="samora"):
        config = load_run_config(overrides=["adapter.method=lora"], preset="demo")
    assert config.adapter == {"method": "lora", "r": 8}
    for key in ("num_experts", "temperature", "lambda_orth", "lambda_match"):
        assert f"adapter.{key}" in caplog.text


def test_the_same_method_again_changes_nothing_else(caplog):
    with caplog.at_level(logging.WARNING, logger="samora"):
        config = load_run_config(overrides=["adapter.method=samora"], preset="demo")
    assert config.adapter["num_experts"] == 3 and config.adapter["lambda_orth"] == 1e-3
    assert "dropped" not in caplog.text


def test_overrides_may_follow_flags_and_keep_their_order(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("train: {max_steps: 5}\n")
    args = build_parser().parse_known_args(["train", str(path), "train.max_steps=2", "--overwrite", "x=1"])
    assert args[1] == ["x=1"]  # what argparse leaves over: main appends it to the overrides
    assert main(["train", str(path), "--overwrite", "train.max_stepz=1"]) == 2  # read, and refused by name


def test_an_override_after_a_flag_is_applied(tmp_path, capsys):
    path = tmp_path / "my.yaml"
    path.write_text("train: {max_steps: 5}\n")
    assert main(["train", str(path), "--no-resume", "train.learning_rate=-1"]) == 2
    assert "train.learning_rate must be >= 0" in capsys.readouterr().err
