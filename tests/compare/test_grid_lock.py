"""``samora compare`` holds its output folder's lock (two compares would train the same cells), and a
finished grid is summarised anew with other analysis settings without retraining."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

from samora.cli import main
from samora.compare import run_compare
from samora.run.folder_lock import lock_path
from samora.run.run_config import load_run_config
from tests.compare.test_grid import finished_files
from tests.helpers import subprocess_environment


def one_cell_grid(model_dir, output, *extra):
    """A grid of one LoRA cell (no base model) on the tiny model: 3 steps, 4 examples per task."""
    return [
        f"model.name={model_dir}",
        "model.dtype=float32",
        "data.tasks=[boolq, arc_easy]",
        "data.per_task_cap=6",
        "data.max_length=96",
        "train.max_steps=3",
        "train.per_device_train_batch_size=4",
        "eval.limit=4",
        "eval.batch_size=8",
        "compare.methods=[lora]",
        "compare.reference=lora",
        "compare.budget=lora",
        "compare.seeds=[1]",
        "compare.baseline=false",
        "compare.bootstrap_samples=200",
        f"output_dir={output}",
        *extra,
    ]


def test_a_second_compare_on_a_running_grid_is_refused(tmp_path, tiny_model_dir, capsys):
    output = tmp_path / "grid"
    arguments = ["compare", "--preset", "demo", *one_cell_grid(tiny_model_dir, output)]
    first = subprocess.Popen(
        [sys.executable, "-m", "samora", *arguments],
        env=subprocess_environment(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (lock_path(output).is_file() and lock_path(output).read_text().startswith("pid")):
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first compare never took the lock"
            time.sleep(0.05)
        assert main(arguments) == 2
        assert f"is in use by another samora process (pid {first.pid}" in capsys.readouterr().err
        log = first.communicate(timeout=600)[0]
    finally:
        first.kill()
    assert first.returncode == 0, log[-3000:]
    assert log.count("cell lora-seed1: training") == 1
    assert json.loads((output / "comparison.json").read_text())["table"]["lora"]["seeds"] == [1]
    assert not lock_path(output).exists()  # released (and removed) when the first compare ended


def test_a_finished_grid_is_summarised_anew_with_more_resamples_without_retraining(tmp_path, tiny_model_dir, caplog):
    """compare.bootstrap_samples (like compare.metric, reference, also_against) only affects the
    comparison: the rerun skips the finished cell, rewrites comparison.json with the new count, and
    takes over a lock left by a dead process with a message."""
    output = tmp_path / "grid"
    run_compare(load_run_config(preset="demo", overrides=one_cell_grid(tiny_model_dir, output)))
    assert json.loads((output / "comparison.json").read_text())["bootstrap_samples"] == 200
    cells = finished_files(output)
    lock_path(output).write_text("pid 999999: samora compare (crashed)\n")  # no process holds it

    more = one_cell_grid(tiny_model_dir, output, "compare.bootstrap_samples=300")
    caplog.clear()  # the first run's records
    with caplog.at_level(logging.INFO, logger="samora"):
        rerun = run_compare(load_run_config(preset="demo", overrides=more))

    assert rerun["bootstrap_samples"] == 300
    assert json.loads((output / "comparison.json").read_text())["bootstrap_samples"] == 300
    assert "lora-seed1: finished earlier, skipped" in caplog.text and "training" not in caplog.text
    assert finished_files(output) == cells  # the cell's files untouched
    assert "taking over the lock" in caplog.text and "pid 999999" in caplog.text
    assert not lock_path(output).exists()
