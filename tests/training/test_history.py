"""The training history file, the compact log lines, and TrainingArguments options reaching the Trainer."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import TrainerCallback

from samora.training import HistoryFile, read_history, train
from samora.training.callbacks import duration, step_line
from tests.helpers import Collator, adapted_model, tiny_dataset

COMMON = dict(
    per_device_train_batch_size=4, logging_steps=1, data_collator=Collator(), learning_rate=1e-2, disable_tqdm=True
)


def test_history_file_holds_every_logged_entry_with_its_step(tmp_path):
    path = tmp_path / "run" / "history.jsonl"
    result = train(
        adapted_model(),
        None,
        tiny_dataset(8),
        output_dir=tmp_path / "adapter",
        max_steps=3,
        callbacks=[HistoryFile(path)],
        **COMMON,
    )
    history = read_history(path)
    assert history == [entry for entry in result.log_history if "step" in entry]
    assert [entry["step"] for entry in history if "loss" in entry] == [1, 2, 3]
    assert {"grad_norm", "learning_rate", "router/load_entropy", "gate/alpha", "tokens_per_second"} <= set(history[0])


class StopAfter(TrainerCallback):
    """Ends training after ``step`` (as a kill would, but cleanly: no checkpoint after the last one)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.step


def test_a_resumed_run_has_each_logged_step_once(tmp_path):
    """A run killed after step 5 left entries 4 and 5 behind its last checkpoint (step 3); resuming
    from that checkpoint rewrites the file from the checkpoint's history, so they are not doubled."""
    dataset, path = tiny_dataset(16), tmp_path / "history.jsonl"
    straight = train(
        adapted_model(), None, dataset, output_dir=tmp_path / "straight", max_steps=6, save_steps=3, **COMMON
    )
    train(
        adapted_model(),
        None,
        dataset,
        output_dir=tmp_path / "killed",
        max_steps=6,
        save_steps=3,
        callbacks=[HistoryFile(path), StopAfter(5)],
        **COMMON,
    )
    assert [e["step"] for e in read_history(path) if "loss" in e] == [1, 2, 3, 4, 5]  # what the killed run left
    resumed = train(
        adapted_model(),
        None,
        dataset,
        output_dir=tmp_path / "killed",
        max_steps=6,
        resume=str(tmp_path / "killed" / "checkpoint-3"),
        callbacks=[HistoryFile(path)],
        **COMMON,
    )
    logged = [e for e in read_history(path) if "loss" in e]
    assert [e["step"] for e in logged] == [1, 2, 3, 4, 5, 6]
    assert [(e["step"], e["loss"]) for e in logged] == [(s, loss) for s, loss in straight.loss_history]
    assert read_history(path) == [e for e in resumed.log_history if "step" in e]


def test_step_lines_replace_the_trainers_dict_print(tmp_path, caplog, capsys):
    options = COMMON | {"disable_tqdm": False}
    with caplog.at_level(logging.INFO, logger="samora"):
        train(adapted_model(), None, tiny_dataset(8), output_dir=tmp_path, max_steps=4, progress="lines", **options)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert len(lines) == 4 and lines[-1].startswith("step 4/4 | loss ") and "| ETA 0s" in lines[-1]
    assert all(" tok/s | ETA " in line and "| grad " in line and "| lr " in line for line in lines)
    assert any(r.getMessage().startswith("trained to step 4 in ") for r in caplog.records)
    printed = capsys.readouterr()
    assert "{'loss'" not in printed.out and "it/s" not in printed.err  # no dict print, no bar
    with pytest.raises(ValueError, match="progress must be 'bar' or 'lines'"):
        train(adapted_model(), None, tiny_dataset(4), output_dir=tmp_path, progress="dots", **COMMON)


def test_step_line_and_duration_format():
    logs = {"loss": 2.13449, "learning_rate": 9.1e-4, "grad_norm": 1.4219, "tokens_per_second": 1234.4}
    assert (
        step_line(10, 25, logs, 65.2) == "step 10/25 | loss 2.134 | lr 9.1e-04 | grad 1.42 | 1,234 tok/s | ETA 1m05s"
    )
    assert step_line(1, 25, {"loss": 3.0}, None) == "step 1/25 | loss 3"
    assert [duration(s) for s in (0.4, 42, 60, 3599, 7380)] == ["0s", "42s", "1m00s", "59m59s", "2h03m"]


def test_save_total_limit_keeps_that_many_checkpoints(tmp_path):
    train(
        adapted_model(),
        None,
        tiny_dataset(8),
        output_dir=tmp_path,
        max_steps=5,
        save_steps=1,
        save_total_limit=2,
        **COMMON,
    )
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-5"]


def test_eval_steps_is_honoured(tmp_path):
    result = train(
        adapted_model(),
        None,
        tiny_dataset(8),
        output_dir=tmp_path,
        max_steps=4,
        eval_steps=2,
        eval_dataset=tiny_dataset(4, seed=3),
        **COMMON,
    )
    assert [entry["step"] for entry in result.log_history if "eval_loss" in entry] == [2, 4]


def test_a_passthrough_argument_reaches_the_trainer(tmp_path):
    train(
        adapted_model(),
        None,
        tiny_dataset(8),
        output_dir=tmp_path,
        max_steps=2,
        save_steps=2,
        max_grad_norm=0.25,
        adam_beta2=0.95,
        **COMMON,
    )
    arguments = torch.load(tmp_path / "checkpoint-2" / "training_args.bin", weights_only=False)
    assert arguments.max_grad_norm == 0.25 and arguments.adam_beta2 == 0.95
