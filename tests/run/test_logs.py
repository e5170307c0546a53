"""What ``samora train`` shows and keeps: one compact line per logging step and no progress bars by
default (bars with --verbose), TrainingArguments options from the command line, TensorBoard events
and the history file in the run folder, and warnings repeated in the report."""

from __future__ import annotations

import json
import re

import pytest
import torch
import yaml

from samora.cli import main
from samora.run.logs import set_progress_bars
from samora.run.run_config import config_from_dict
from samora.training import read_history
from tests.helpers import run_overrides

STEP_LINE = re.compile(
    r"^\[samora\] step (\d+)/3 \| loss [\d.]+ \| lr [\d.e+-]+ \| grad [\d.e+-]+ \| [\d,]+ tok/s "
    r"\| ETA \d+s$"
)
BAR = re.compile(r"it/s\]|s/it\]|\d+%\|")  # tqdm's rate and bar


@pytest.fixture(autouse=True)
def bars_back_on():
    yield
    set_progress_bars(True)  # the CLI turned them off in this process: leave the library default to others


def test_default_run_is_quiet_and_keeps_everything(tiny_model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            *run_overrides(tiny_model_dir, run),
            "eval.before=false",
            "train.report_to=tensorboard",
            "train.precision=bf16",
            "train.max_grad_norm=0.25",
            "train.save_steps=1",
            "train.save_total_limit=2",
        ]
    )
    assert code == 0
    out, err = capsys.readouterr()
    steps = [STEP_LINE.match(line) for line in err.splitlines() if line.startswith("[samora] step ")]
    assert [int(m.group(1)) for m in steps if m] == [1, 2, 3] and all(steps)  # one compact line per logging step
    assert not BAR.search(out + err) and "\r" not in out + err and "{'loss'" not in out
    assert re.search(r"^boolq +\| validation", out, re.M)  # the results table, on stdout

    history = read_history(run / "history.jsonl")
    metrics = json.loads((run / "metrics.json").read_text())
    assert [[e["step"], e["loss"]] for e in history if "loss" in e] == metrics["train"]["loss_history"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "train/loss",
        "train/grad_norm",
        "train/learning_rate",
        "train/router/load_entropy",
        "train/gate/boolq",
        "train/tokens_per_second",
    } <= tags
    for key in ("loss", "grad_norm", "router/load_entropy", "gate/piqa"):
        logged = [(e["step"], e[key]) for e in history if key in e]
        assert [(s.step, pytest.approx(s.value, rel=1e-6)) for s in events.Scalars(f"train/{key}")] == logged

    assert sorted(p.name for p in (run / "adapter").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    arguments = torch.load(run / "adapter" / "checkpoint-3" / "training_args.bin", weights_only=False)
    assert arguments.max_grad_norm == 0.25 and arguments.bf16 and arguments.save_total_limit == 2
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["training_arguments"] == {"max_grad_norm": 0.25}
    assert config_from_dict(saved).train.training_arguments == {"max_grad_norm": 0.25}

    warning = next(line for line in err.splitlines() if "prompts cut from the left" in line)
    assert warning.startswith("[samora] warning: prompts cut from the left to fit max_length=128")
    report = (run / "report.md").read_text()
    assert "## Warnings" in report and f"- {warning.removeprefix('[samora] warning: ')}" in report
    assert "`history.jsonl`" in report and "`tensorboard/`" in report


def test_verbose_shows_the_progress_bars(tiny_model_dir, tmp_path, capsys):
    code = main(
        [
            "train",
            "--verbose",
            *run_overrides(tiny_model_dir, tmp_path / "run"),
            "eval.before=false",
            "adapter.method=lora",
        ]
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert BAR.search(err)  # data, training and evaluation bars
    assert not any(line.startswith("[samora] step ") for line in err.splitlines())  # the Trainer's own output instead
    assert "[samora] " in err and "boolq/validation: using" in err  # DEBUG messages too
