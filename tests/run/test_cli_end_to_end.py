"""``samora train | eval | analyze | env`` end to end on a tiny model with the real tokenizer and data."""

from __future__ import annotations

import json

import pytest
import torch

from samora.run.cli import main

TASKS = "[boolq, piqa, arc_easy]"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer Llama with SmolLM2's tokenizer, saved as a local folder (what model.name points to)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from samora.run.smollm2 import smollm2_path

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
        )
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def snapshot_of(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def run_overrides(model_dir, run_dir, *extra):
    return [
        f"model.name={model_dir}",
        "model.dtype=float32",
        f"data.tasks={TASKS}",
        "data.per_task_cap=6",
        "data.max_length=128",
        "train.max_steps=3",
        "train.batch_size=4",
        "train.logging_steps=1",
        "eval.limit=4",
        "eval.batch_size=8",
        f"output_dir={run_dir}",
        *extra,
    ]


def test_train_eval_analyze_write_a_complete_run_folder(tiny_model_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--preset", "demo", *run_overrides(tiny_model_dir, run_dir)]) == 0
    for name in (
        "config.yaml",
        "metrics.json",
        "report.md",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "plots/training_loss.png",
        "plots/task_metrics.png",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["tasks"] == ["boolq", "piqa", "arc_easy"] and metrics["train"]["steps"] == 3
    for stage in ("before", "after"):
        assert set(metrics[stage]["tasks"]) == {"boolq", "piqa", "arc_easy"}
        assert all(entry["n"] == 4 for entry in metrics[stage]["tasks"].values())
    report = (run_dir / "report.md").read_text()
    assert "| boolq |" in report and "plots/training_loss.png" in report

    for stage in ("before", "after"):  # per-example records of both evaluations
        records = [json.loads(line) for line in (run_dir / f"samples_{stage}.jsonl").read_text().splitlines()]
        assert len(records) == 12 and {r["task"] for r in records} == {"boolq", "piqa", "arc_easy"}
        piqa = [r["correct"] for r in records if r["task"] == "piqa"]
        assert sum(piqa) / 4 == metrics[stage]["tasks"]["piqa"]["metrics"]["acc"]
    assert "[95% CI]" in report and "majority" in report

    # the run folder alone: its config.yaml gives the tasks, template, limit, model and seed
    assert main(["eval", "--adapter", str(run_dir)]) == 0
    first = run_dir / "evals" / "eval-001"
    evaluated = json.loads((first / "eval.json").read_text())
    assert evaluated["tasks"]["piqa"]["metrics"] == metrics["after"]["tasks"]["piqa"]["metrics"]
    assert evaluated["template"] == metrics["after"]["template"]
    assert (first / "samples.jsonl").read_text() == (run_dir / "samples_after.jsonl").read_text()
    assert "limit: 4" in (first / "config.yaml").read_text()
    assert f"results: {first / 'eval.json'}" in capsys.readouterr().out
    written = snapshot_of(first)
    assert main(["eval", "--adapter", str(run_dir), "data.tasks=[piqa]"]) == 0  # a new folder, never overwritten
    assert list(json.loads((run_dir / "evals" / "eval-002" / "eval.json").read_text())["tasks"]) == ["piqa"]
    assert snapshot_of(first) == written

    assert main(["analyze", str(run_dir)]) == 0  # the run's analysis/ is kept; this one is analysis-002
    assert (run_dir / "analysis-002" / "analysis.json").is_file()
    assert (run_dir / "analysis" / "analysis.json").is_file()
    assert main(["env"]) == 0
    assert "transformers" in capsys.readouterr().out


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["adapter.method=qlora"], "adapter.method must be one of"),
        (["data.tasks=[boolq, nosuchtask]"], "nosuchtask"),
        (["train.learning_rat=1e-4"], "train.learning_rat"),
    ],
)
def test_bad_input_is_a_clear_error_before_any_work(overrides, message, tiny_model_dir, tmp_path, capsys):
    code = main(["train", *run_overrides(tiny_model_dir, tmp_path / "run"), *overrides])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run" / "adapter").exists()


def test_unknown_model_path_names_the_key(tmp_path, capsys):
    code = main(["train", *run_overrides(tmp_path / "missing-model", tmp_path / "run")])
    assert code == 2 and "model.name" in capsys.readouterr().err


def test_adapter_from_another_base_is_refused(tiny_model_dir, tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    import samora

    other = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=48,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    samora.save_adapter(samora.get_model(other, samora.SAMoRAConfig(tasks=["boolq"])), tmp_path / "foreign")
    code = main(["eval", "--adapter", str(tmp_path / "foreign"), *run_overrides(tiny_model_dir, tmp_path / "eval")])
    assert code == 1 and "do not match this model" in capsys.readouterr().err
