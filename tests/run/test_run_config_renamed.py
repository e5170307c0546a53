"""Renamed run-configuration keys (``train.grad_accum`` -> ``train.gradient_accumulation_steps``, ``epochs``,
``batch_size``, ``lr_scheduler``: TrainingArguments' names): old config files, overrides, saved run folders and
committed study grids still load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from samora.run.run_config import RENAMED_KEYS, ConfigError, config_from_dict, load_run_config
from samora.run.run_folder import RunPlan, plan_run_folder

STUDY = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "study-commonsense-cpu"
OLD_NAME = r"train.grad_accum is deprecated .* read as train.gradient_accumulation_steps"


def test_the_old_key_in_a_file_or_an_override_is_read_under_the_new_name_with_a_warning(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"train": {"max_steps": 3, "grad_accum": 2}}))
    with pytest.warns(FutureWarning, match=f"{path}: {OLD_NAME}"):
        config = load_run_config(str(path))
    assert config.train.gradient_accumulation_steps == 2
    assert "grad_accum" not in config.to_dict()["train"]  # a saved config.yaml holds the new name only
    with pytest.warns(FutureWarning) as caught:
        assert load_run_config(str(path), ["train.grad_accum=4"]).train.gradient_accumulation_steps == 4
    assert any(str(w.message).startswith("override: train.grad_accum is deprecated") for w in caught)
    new = load_run_config(overrides=["train.gradient_accumulation_steps=3"])
    assert new.train.gradient_accumulation_steps == 3 and new.train.training_arguments == {}


OLD_VALUES = {"grad_accum": 2, "epochs": 2.0, "batch_size": 4, "lr_scheduler": "cosine"}


@pytest.mark.parametrize("section,old", list(RENAMED_KEYS), ids=[old for _, old in RENAMED_KEYS])
def test_every_old_name_is_read_as_the_trainer_name_with_a_warning(section, old):
    new = RENAMED_KEYS[section, old]
    with pytest.warns(FutureWarning, match=f"override: {section}.{old} is deprecated .* read as {section}.{new}"):
        config = load_run_config(overrides=[f"{section}.{old}={OLD_VALUES[old]}"])
    assert getattr(getattr(config, section), new) == OLD_VALUES[old]
    assert old not in config.to_dict()[section]


def test_a_later_layer_with_the_new_name_wins_over_an_old_one_and_one_layer_with_both_is_refused(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"train": {"grad_accum": 2}}))
    with pytest.warns(FutureWarning):
        config = load_run_config(str(path), ["train.gradient_accumulation_steps=5"])
    assert config.train.gradient_accumulation_steps == 5
    both = {"train": {"grad_accum": 2, "gradient_accumulation_steps": 2}}
    with pytest.raises(ConfigError, match="train.grad_accum is the old name of train.gradient_accumulation_steps"):
        config_from_dict(both)


def test_a_run_folder_saved_with_the_old_name_resumes(tmp_path):
    config = load_run_config(overrides=[f"output_dir={tmp_path / 'run'}", "train.gradient_accumulation_steps=2"])
    saved = config.to_dict()
    saved["train"]["grad_accum"] = saved["train"].pop("gradient_accumulation_steps")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    with pytest.warns(FutureWarning, match=OLD_NAME):
        assert plan_run_folder(tmp_path / "run", config) == RunPlan("resume", None)


def test_the_committed_study_resumes_after_the_rename(tmp_path):
    """The study's grid.yaml was written with train.grad_accum: a rerun of its preset into a copy is
    recognised as the same comparison (a cell's identity, in done.json, holds no train.* key)."""
    from samora.compare.grid import check_grid_config

    assert "grad_accum" in yaml.safe_load((STUDY / "grid.yaml").read_text())["train"]  # written before the rename
    output = tmp_path / "study"
    for done in sorted(STUDY.glob("cells/*/done.json")):
        assert set(json.loads(done.read_text())["identity"]) <= {"kind", "spec", "seed", "adapter"}
        (output / "cells" / done.parent.name).mkdir(parents=True)
        shutil.copy(done, output / "cells" / done.parent.name / "done.json")
    shutil.copy(STUDY / "grid.yaml", output / "grid.yaml")
    config = load_run_config(preset="study-commonsense-cpu", overrides=[f"output_dir={output}"])
    with pytest.warns(FutureWarning, match=f"grid.yaml: {OLD_NAME}"):
        check_grid_config(config, output)  # raises for a comparison with another configuration
