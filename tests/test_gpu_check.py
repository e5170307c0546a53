"""scripts/gpu_check.sh without a GPU: its plan, its refusal without wheels, and its model maker."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import contract_precision

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("GPU_CHECK_PYTHON", "SAMORA_WHEELS")}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=environment | env, cwd=ROOT
    )


def test_dry_run_plans_every_step_on_cuda_in_bf16_within_ten_minutes():
    result = run_script("--dry-run")
    assert result.returncode == 0, result.stderr
    steps = re.findall(r"^\[([\w-]+)\] <= (\d+)s: (.*)$", result.stdout, flags=re.M)
    names = [name for name, _, _ in steps]
    assert names == [
        *["venv", "install", "install-data", "cuda-visible", "env", "contract", "model", "bench", "svd-init"],
        *["qlora", "qlora-flash-attention"],
        *["fsdp-2gpu", "fsdp-2gpu-eval", "zero3-2gpu", "zero3-2gpu-eval"],  # with two or more GPUs
    ]
    commands = {name: command for name, _, command in steps}
    assert "--no-index --find-links wheels -r requirements/gpu.txt" in commands["install"]
    assert "SAMORA_TEST_DEVICE=cuda SAMORA_TEST_DTYPE=bfloat16" in commands["contract"]
    assert "tests/test_contract.py" in commands["contract"]
    assert "--device cuda --dtype bfloat16" in commands["bench"]
    assert "4096x4096,1024x4096" in commands["svd-init"]
    total = int(re.search(r"^TOTAL_S=(\d+)", SCRIPT.read_text(), flags=re.M).group(1))
    assert "--attn-implementation sdpa" in commands["qlora"] and "--device cuda" in commands["qlora"]
    assert "--attn-implementation flash_attention_2" in commands["qlora-flash-attention"]
    assert total < 10 * 60  # every step's limit is capped by what is left of this total
    for sharding in ("fsdp", "zero3"):
        command = commands[f"{sharding}-2gpu"]
        assert f"kill_and_resume.py gpu_check_results/{sharding}-2gpu 2 --" in command
        assert f"--config_file examples/accelerate/{sharding}.yaml --num_processes 2 -m samora.cli train" in command
        assert f"eval --adapter gpu_check_results/{sharding}-2gpu" in commands[f"{sharding}-2gpu-eval"]
    for path in (
        "requirements/gpu.txt",
        "benchmarks/eight_b_like.py",
        "benchmarks/svd_init.py",
        "benchmarks/qlora_step.py",
        "tests/test_contract.py",
        "scripts/lib/kill_and_resume.py",
        "examples/own-tasks/copa.yaml",
        "examples/accelerate/fsdp.yaml",
        "examples/accelerate/zero3.yaml",
    ):
        assert (ROOT / path).is_file(), path


def test_without_wheels_it_stops_and_says_how_to_get_them(tmp_path):
    result = run_script(SAMORA_WHEELS=str(tmp_path / "missing"), GPU_CHECK_OUT=str(tmp_path / "out"))
    assert result.returncode == 2
    assert "requirements/gpu.txt" in result.stderr and "GPU_CHECK_PYTHON" in result.stderr
    assert not (tmp_path / "out").exists()  # it stopped before doing anything


def test_eight_b_like_model_has_the_asked_layer_shapes(tmp_path):
    spec = importlib.util.spec_from_file_location("eight_b_like", ROOT / "benchmarks" / "eight_b_like.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(
        [
            str(tmp_path),
            "--layers",
            "1",
            "--hidden",
            "64",
            "--intermediate",
            "96",
            "--heads",
            "4",
            "--kv-heads",
            "2",
            "--vocab",
            "100",
            "--dtype",
            "float32",
        ]
    )
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    attention = model.model.layers[0].self_attn
    assert attention.q_proj.weight.shape == (64, 64) and attention.k_proj.weight.shape == (32, 64)
    assert model.model.layers[0].mlp.up_proj.weight.shape == (96, 64) and len(model.model.layers) == 1
    assert model(torch.tensor([[3, 4, 5]])).logits.shape == (1, 3, 100)


def test_contract_suite_precision_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SAMORA_TEST_DEVICE", "cpu")
    monkeypatch.setenv("SAMORA_TEST_DTYPE", "bfloat16")
    assert contract_precision() == (torch.device("cpu"), torch.bfloat16)
    monkeypatch.delenv("SAMORA_TEST_DEVICE")
    monkeypatch.delenv("SAMORA_TEST_DTYPE")
    assert contract_precision() == (torch.device("cpu"), torch.float32)  # the default: as before
    monkeypatch.setenv("SAMORA_TEST_DTYPE", "int8")
    with pytest.raises(ValueError, match="SAMORA_TEST_DTYPE must be"):
        contract_precision()
    if not torch.cuda.is_available():
        monkeypatch.setenv("SAMORA_TEST_DTYPE", "float32")
        monkeypatch.setenv("SAMORA_TEST_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="no CUDA device"):
            contract_precision()


FAKE_RUN = """
import pathlib, sys, time
run = pathlib.Path(sys.argv[1])
marker = run / "adapter" / "checkpoint-2" / "trainer_state.json"
if marker.exists():
    print(f"[samora] resuming the unfinished run in {run} from {marker.parent}", file=sys.stderr)
    sys.exit(0)
marker.parent.mkdir(parents=True)
marker.write_text("{}")
time.sleep(60)  # killed here
"""


def test_kill_and_resume_kills_at_the_checkpoint_and_checks_that_the_rerun_resumed(tmp_path):
    """The driver of the 2-GPU steps, on a stand-in for the training command that checkpoints, then hangs
    until killed, and on the rerun says it resumes."""
    script = tmp_path / "fake_run.py"
    script.write_text(FAKE_RUN)
    run_dir = tmp_path / "run"
    driver = [sys.executable, str(ROOT / "scripts" / "lib" / "kill_and_resume.py"), str(run_dir), "2", "--"]
    result = subprocess.run(
        [*driver, sys.executable, str(script), str(run_dir)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "killed the run after checkpoint-2" in result.stdout and "resuming the unfinished run" in result.stderr

    silent = tmp_path / "no_resume.py"
    silent.write_text(FAKE_RUN.replace("resuming the unfinished run in", "starting a new run in"))
    other = tmp_path / "other"
    driver[2] = str(other)
    result = subprocess.run(
        [*driver, sys.executable, str(silent), str(other)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "without resuming" in result.stderr
