"""Runs that never lie and never lose work, tried on real ``samora train`` processes: a diverging run fails,
a killed run resumes bit-identically with the same command, and run folders are never clobbered or mixed."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from samora.cli import main
from samora.training import read_history
from tests.helpers import run_overrides, subprocess_environment

QUICK = ["eval.before=false", "eval.limit=2", "adapter.method=lora"]  # lora: no router, so no analysis


def samora_train(model_dir, run_dir, *extra) -> list[str]:
    return [sys.executable, "-m", "samora.cli", "train", *run_overrides(model_dir, run_dir), *QUICK, *extra]


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=subprocess_environment(), capture_output=True, text=True, timeout=600)


def adapter_of_run(run_dir: Path) -> dict:
    return load_file(run_dir / "adapter" / "adapter_model.safetensors")


def test_a_diverging_run_fails_and_writes_no_adapter(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    finished = run(
        samora_train(
            tiny_model_dir,
            run_dir,
            "train.learning_rate=1e10",
            "train.warmup_ratio=0",
            "train.max_steps=6",
            "train.save_steps=1",
        )
    )
    assert finished.returncode == 3, finished.stdout[-2000:] + finished.stderr[-2000:]
    assert "training failed: training diverged at step" in finished.stderr
    assert "learning rate" in finished.stderr and "alpha" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not (run_dir / "adapter" / "adapter_model.safetensors").exists()  # no final adapter
    assert not (run_dir / "metrics.json").exists() and "evaluating the adapted model" not in finished.stderr


def test_a_killed_run_resumes_with_the_same_command_and_ends_bit_identical(tiny_model_dir, tmp_path):
    steps = ["train.max_steps=12", "train.save_steps=2", "train.per_device_train_batch_size=2"]
    straight = run(samora_train(tiny_model_dir, tmp_path / "straight", *steps))
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    command = samora_train(tiny_model_dir, killed_dir, *steps)
    process = subprocess.Popen(
        command, env=subprocess_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not (killed_dir / "adapter" / "checkpoint-4" / "trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed_dir / "adapter" / "adapter_model.safetensors").exists(), "killed after training ended"
    complete = sorted(
        (p for p in (killed_dir / "adapter").glob("checkpoint-*") if (p / "trainer_state.json").exists()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    last = complete[-1]
    weights = last / "adapter_model.safetensors"
    damaged = bytearray(weights.read_bytes())
    damaged[-1] ^= 0xFF  # the last complete checkpoint is corrupted too: the one before it must be used
    weights.write_bytes(bytes(damaged))

    resumed = run(command)  # the same command
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"skipping checkpoint {last}" in resumed.stderr
    assert f"resuming the unfinished run in {killed_dir} from {complete[-2]}" in resumed.stderr
    expected, got = adapter_of_run(tmp_path / "straight"), adapter_of_run(killed_dir)
    assert expected.keys() == got.keys()
    assert all(
        expected[k].dtype == got[k].dtype and expected[k].numpy().tobytes() == got[k].numpy().tobytes()
        for k in expected
    )  # bit for bit
    loss_straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())["train"]["loss_history"]
    loss_resumed = json.loads((killed_dir / "metrics.json").read_text())["train"]["loss_history"]
    assert loss_resumed == loss_straight
    logged = [entry for entry in read_history(killed_dir / "history.jsonl") if "loss" in entry]
    assert [[entry["step"], entry["loss"]] for entry in logged] == loss_straight  # each step once, none missing


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *run_overrides(tiny_model_dir, run_dir), *QUICK]) == 0
    return run_dir


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_finished_run_is_refused_unless_overwrite(finished_run, tiny_model_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = snapshot(run_dir)
    assert main(["train", *run_overrides(tiny_model_dir, run_dir), *QUICK]) == 2
    assert "holds a finished run (metrics.json); pass --overwrite" in capsys.readouterr().err
    assert snapshot(run_dir) == before
    (run_dir / "note-from-the-old-run.txt").write_text("old")
    assert (
        main(["train", "--overwrite", *run_overrides(tiny_model_dir, run_dir), *QUICK, "train.learning_rate=1e-3"])
        == 0
    )
    assert not (run_dir / "note-from-the-old-run.txt").exists()  # the old run went as a whole
    assert "learning_rate: 0.001" in (run_dir / "config.yaml").read_text()
    assert not list(tmp_path.glob(".run.discarded-*"))


def test_a_failed_overwrite_never_leaves_the_old_results_beside_the_new_run(
    finished_run,
    tiny_model_dir,
    tmp_path,
    capsys,
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    code = main(
        [
            "train",
            "--overwrite",
            *run_overrides(tiny_model_dir, run_dir),
            *QUICK,
            "train.learning_rate=1e10",
            "train.warmup_ratio=0",
        ]
    )
    assert code == 3 and "training diverged" in capsys.readouterr().err
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "report.md").exists()
    assert not (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert "learning_rate: 10000000000.0" in (run_dir / "config.yaml").read_text()


def test_an_unfinished_run_with_another_config_is_refused_and_no_resume_starts_over(
    finished_run,
    tiny_model_dir,
    tmp_path,
    capsys,
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "metrics.json").unlink()  # killed before it finished
    stale = run_dir / "adapter" / "checkpoint-99"
    stale.mkdir()
    before = snapshot(run_dir)
    assert main(["train", *run_overrides(tiny_model_dir, run_dir), *QUICK, "train.learning_rate=3e-3"]) == 2
    err = capsys.readouterr().err
    assert (
        "holds an unfinished run with another configuration (train.learning_rate: 0.0002 in the folder, 0.003 now)"
        in err
        and "--no-resume or --overwrite" in err
    )
    assert snapshot(run_dir) == before
    assert (
        main(["train", "--no-resume", *run_overrides(tiny_model_dir, run_dir), *QUICK, "train.learning_rate=3e-3"])
        == 0
    )
    assert not stale.exists() and (run_dir / "metrics.json").is_file()


def test_a_folder_that_is_not_a_run_is_refused(tiny_model_dir, tmp_path, capsys):
    run_dir = tmp_path / "thesis"
    run_dir.mkdir()
    (run_dir / "chapter1.tex").write_text("precious")
    for flags in ([], ["--overwrite"]):
        assert main(["train", *flags, *run_overrides(tiny_model_dir, run_dir), *QUICK]) == 2
        assert "is not a samora run folder (no config.yaml)" in capsys.readouterr().err
    assert (run_dir / "chapter1.tex").read_text() == "precious"


def test_a_nan_alpha_is_refused_before_anything_loads(tiny_model_dir, tmp_path, capsys):
    code = main(
        ["train", *run_overrides(tiny_model_dir, tmp_path / "run"), "adapter.method=lora", "adapter.alpha=.nan"]
    )
    assert code == 2 and "adapter.alpha must be a finite number, got nan" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
