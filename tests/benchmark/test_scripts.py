"""The layer-level and FLOP-count scripts in benchmarks/ run end to end at tiny sizes."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT

BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import each other's helpers


def test_step_flops_counts_each_contender_against_peft_lora(capsys):
    import step_flops

    rows = {
        row["name"]: row
        for row in step_flops.main(["--model", "tiny", "--methods", "moore,lora", "--batch", "1", "--seq-len", "8"])
    }
    assert rows.keys() == {"floor", "peft_lora", "moore", "lora"}
    assert rows["peft_lora"]["ratio_to_peft_lora"] == 1.0
    assert rows["floor"]["flops"] < rows["peft_lora"]["flops"] < rows["moore"]["flops"]
    assert rows["peft_lora"]["forward_flops"] < rows["moore"]["forward_flops"] < rows["moore"]["flops"]
    assert "| moore |" in capsys.readouterr().out


def test_task_scaling_sweep_runs(capsys):
    import task_scaling

    task_scaling.main(["--d", "16", "--batch", "2", "--tokens", "3", "--tasks", "1,50", "--repeats", "1"])
    lines = [
        line for line in capsys.readouterr().out.splitlines() if line.startswith("| 1") or line.startswith("| 50")
    ]
    assert len(lines) == 2 and all(line.count("|") == 5 for line in lines)


def test_smora_dispatch_sweep_runs(capsys):
    import smora_dispatch

    smora_dispatch.main(["--tokens", "8", "--dims", "16", "--ranks", "8", "--top-k", "1,4", "--repeats", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 16 |")]
    assert len(rows) == 2


def test_own_task_speed_scores_the_copy_of_piqa_identically(capsys):
    import own_task_speed

    from samora.data.tasks import unregister_task

    try:
        own_task_speed.main(["--model", "tiny", "--limit", "4", "--rounds", "1"])
    finally:
        unregister_task("piqa_own")
    assert "own / built-in = " in capsys.readouterr().out  # the script asserts equal examples and acc
