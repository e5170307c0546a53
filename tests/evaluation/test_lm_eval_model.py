"""lm-eval runs a samora adapter with each lm-eval task routed to its task id (tiny model, local tasks)."""

from __future__ import annotations

import json
import sys

import lm_eval
import pytest
import torch
from lm_eval.tasks import TaskManager
from transformers import LlamaForCausalLM

import samora
from samora.evaluation.lm_eval_model import SamoraLM, cli, parse_task_map
from tests.helpers import tiny_llama_config

# Three local lm-eval tasks; each prompt starts with its task's marker so a forward hook can tell
# which task a request belongs to. "arc-e" is a samora alias of arc_easy (not an lm-eval task name).
LOCAL_TASKS = {"arc-e": "ALPHA", "tiny_piqa": "BRAVO", "tiny_other": "CHARLIE"}


@pytest.fixture
def workspace(tmp_path, smollm2_tokenizer):
    """A tiny Llama over SmolLM2's tokenizer saved as a model folder, and the three task folders."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(len(smollm2_tokenizer)))
    model.save_pretrained(tmp_path / "base")
    smollm2_tokenizer.save_pretrained(tmp_path / "base")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for task, marker in LOCAL_TASKS.items():
        rows = [
            {"question": f"{marker} question {i}?", "choices": ["yes", "no", "maybe"], "label": i % 3}
            for i in range(4)
        ]
        data = tasks / f"{task}.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
        (tasks / f"{task}.yaml").write_text(
            f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
            "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{question}}'\n"
            "doc_to_choice: choices\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n"
        )
    return tmp_path


def save_adapter(workspace, config) -> str:
    model = samora.get_model(LlamaForCausalLM.from_pretrained(workspace / "base"), config)
    with torch.no_grad():
        for layer in samora.adapter_of(model).layers.values():
            for name, parameter in layer.named_parameters():
                if not name.startswith("base_layer."):
                    parameter.add_(torch.randn_like(parameter) * 0.2)
    samora.save_adapter(model, workspace / "run" / "adapter")
    return str(workspace / "run")


def record_routes(lm: SamoraLM, tokenizer) -> dict[str, set]:
    """marker -> the task ids the model's forward received for prompts with that marker."""
    seen: dict[str, set] = {}

    def hook(module, args, kwargs):
        for row, task_id in zip(args[0], torch.as_tensor(kwargs["task_ids"]).reshape(-1).expand(len(args[0]))):
            text = tokenizer.decode(row)
            for marker in LOCAL_TASKS.values():
                if marker in text:
                    seen.setdefault(marker, set()).add(int(task_id))

    lm.model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def evaluate(lm, workspace, tasks):
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        log_samples=False,
        task_manager=TaskManager(include_path=str(workspace / "tasks"), include_defaults=False),
    )


def test_each_lm_eval_task_runs_with_its_task_id(workspace, smollm2_tokenizer):
    run = save_adapter(workspace, samora.MTLLoRAConfig(r=4, num_experts=2, tasks=["arc_easy", "piqa"]))
    lm = SamoraLM(
        adapter=run, pretrained=str(workspace / "base"), task_map="tiny_piqa:piqa", device="cpu", batch_size=4
    )
    seen = record_routes(lm, smollm2_tokenizer)
    results = evaluate(lm, workspace, ["arc-e", "tiny_piqa"])
    assert seen == {"ALPHA": {0}, "BRAVO": {1}}  # registry alias -> arc_easy (0); task_map -> piqa (1)
    routing = results["config"]["samora_routing"]
    assert routing["arc-e"] == {
        "adapter_task": "arc_easy",
        "task_id": 0,
        "how": "samora task registry",
        "requests": 12,
    }
    assert routing["tiny_piqa"]["task_id"] == 1 and routing["tiny_piqa"]["how"] == "task_map"
    assert set(results["results"]) == {"arc-e", "tiny_piqa"} and "acc,none" in results["results"]["arc-e"]


def test_a_method_that_needs_a_task_id_refuses_an_unknown_task(workspace):
    run = save_adapter(workspace, samora.MoELoRAConfig(r=4, num_experts=2, task_dim=4, tasks=["arc_easy", "piqa"]))
    lm = SamoraLM(adapter=run, pretrained=str(workspace / "base"), device="cpu")
    with pytest.raises(ValueError, match=r"'tiny_other'.*no route for unseen tasks.*task_map=tiny_other:"):
        evaluate(lm, workspace, ["tiny_other"])


def test_cli_scores_unknown_tasks_through_the_unseen_route(workspace, smollm2_tokenizer, monkeypatch, caplog):
    """`samora-lm-eval --model samora ...` (lm-eval's CLI with the model registered); base from the adapter."""
    run = save_adapter(workspace, samora.SAMoRAConfig(r=4, num_experts=2, tasks=["arc_easy", "piqa"]))
    out = workspace / "results"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "samora-lm-eval",
            "--model",
            "samora",
            "--model_args",
            f"adapter={run}",
            "--tasks",
            "arc-e,tiny_other",
            "--include_path",
            str(workspace / "tasks"),
            "--device",
            "cpu",
            "--output_path",
            str(out),
        ],
    )
    with caplog.at_level("WARNING", logger="samora"):
        cli()
    [written] = out.rglob("results_*.json")
    routing = json.loads(written.read_text())["config"]["samora_routing"]
    assert routing["tiny_other"]["task_id"] == -1 and routing["tiny_other"]["adapter_task"] == "unseen"
    assert routing["arc-e"]["task_id"] == 0
    assert "'tiny_other'" in caplog.text and "unseen-task route" in caplog.text


def test_task_map_parsing_and_registration():
    assert parse_task_map("a:x|b : y") == {"a": "x", "b": "y"}
    with pytest.raises(ValueError, match="lm_eval_task:adapter_task"):
        parse_task_map("a=x")
    from lm_eval.api.registry import get_model

    assert get_model("samora") is SamoraLM
