"""A user's task YAML runs unchanged in lm-eval (``--include_path``), and the samora lm-eval model routes
it to the task id it was trained under."""

from __future__ import annotations

import lm_eval
import torch
from lm_eval.tasks import TaskManager
from transformers import LlamaForCausalLM

import samora
from samora.evaluation.lm_eval_model import SamoraLM
from tests.helpers import ROOT, tiny_llama_config

EXAMPLES = ROOT / "examples" / "own-tasks"


def test_an_own_task_runs_in_lm_eval_routed_to_its_trained_task_id(tmp_path, smollm2_tokenizer, monkeypatch):
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_llama_config(len(smollm2_tokenizer))).save_pretrained(tmp_path / "base")
    smollm2_tokenizer.save_pretrained(tmp_path / "base")
    config = samora.MTLLoRAConfig(r=4, num_experts=2, tasks=["boolq", "copa_own"])
    model = samora.get_model(LlamaForCausalLM.from_pretrained(tmp_path / "base"), config)
    samora.save_adapter(model, tmp_path / "run" / "adapter")
    lm = SamoraLM(adapter=str(tmp_path / "run"), pretrained=str(tmp_path / "base"), device="cpu", batch_size=8)
    monkeypatch.chdir(EXAMPLES)  # lm-eval 0.4 reads data_files relative to the working directory
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=["copa_own"],
        limit=4,
        task_manager=TaskManager(include_path=str(EXAMPLES), include_defaults=False),
    )
    assert results["config"]["samora_routing"]["copa_own"] == {
        "adapter_task": "copa_own",
        "task_id": 1,
        "how": "same name",
        "requests": 8,
    }
    assert "acc,none" in results["results"]["copa_own"]
