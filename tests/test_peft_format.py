"""PEFT export and import: every export loads in PEFT with samora's logits; PEFT LoRAs load in samora."""

from __future__ import annotations

import json

import peft
import pytest
import torch
from safetensors.torch import load_file

import samora
from samora.cli import main
from samora.peft_format import export_peft, lora_factors
from tests.helpers import tiny_model
from tests.method_cases import CASES

TASKS = ["arc_easy", "piqa", "boolq"]
EXPORTABLE = ["lora", "multilora", "moelora", "mtllora", "mtllora_diagonal"]
TOKEN_ROUTED = ["samora", "hydralora", "smora", "moore"]
TOLERANCE = 1e-5  # float32 logits; the two paths order the same products differently at most


def adapted(case: str, seed: int = 0):
    """A tiny Llama with the case's adapter, every adapter tensor random (B is zero at init)."""
    config = CASES[case](TASKS)
    config.target_modules = ["q_proj", "v_proj", "down_proj"]
    model = samora.get_model(tiny_model("llama", seed), config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in samora.adapter_of(model).layers.values():
            for name, parameter in layer.named_parameters():
                if not name.startswith("base_layer."):
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def peft_logits(folder, input_ids) -> torch.Tensor:
    model = peft.PeftModel.from_pretrained(tiny_model("llama"), str(folder)).eval()
    with torch.no_grad():
        return model(input_ids=input_ids).logits


def samora_logits(model, input_ids, task=None) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids, task_ids=task).logits


@pytest.mark.parametrize("case", EXPORTABLE)
def test_factors_reproduce_the_dense_update(case):
    """Reference path: scale * B @ A equals the layer's own delta_weight, for every task."""
    model = adapted(case)
    task_ids = range(len(TASKS)) if samora.adapter_of(model).config.merge_kind == "per_task" else [None]
    for layer in samora.adapter_of(model).layers.values():
        for task_id in task_ids:
            b, a, scale = lora_factors(layer, task_id)
            torch.testing.assert_close(scale * b @ a, layer.delta_weight(task_id), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("case", EXPORTABLE)
def test_every_export_loads_in_peft_with_samora_logits(case, tmp_path, input_ids):
    model = adapted(case)
    samora.save_adapter(model, tmp_path / "run" / "adapter")
    folders = export_peft(tmp_path / "run", tmp_path / "peft")
    per_task = samora.adapter_of(model).config.merge_kind == "per_task"
    assert folders == ([tmp_path / "peft" / task for task in TASKS] if per_task else [tmp_path / "peft"])
    for task, folder in zip(TASKS if per_task else [None], folders):
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA" and config["target_modules"] == ["q_proj", "v_proj", "down_proj"]
        expected = samora_logits(model, input_ids, task)
        difference = (peft_logits(folder, input_ids) - expected).abs().max().item()
        assert difference < TOLERANCE, f"{case} task {task}: PEFT logits differ by {difference}"
        base = tiny_model("llama")(input_ids=input_ids).logits
        assert (base - expected).abs().max() > 1e-2  # the adapter really changes the model


def test_per_task_exports_differ_and_match_their_own_task(tmp_path, input_ids):
    """One LoRA per task, each equal to its own task's route only."""
    model = adapted("mtllora")
    folders = export_peft(model, tmp_path / "peft")
    logits = [peft_logits(folder, input_ids) for folder in folders]
    for i, task in enumerate(TASKS):
        own = samora_logits(model, input_ids, task)
        assert (logits[i] - own).abs().max() < TOLERANCE
        assert (logits[(i + 1) % len(TASKS)] - own).abs().max() > 1e-3


def test_multilora_export_has_rank_n_r_and_lora_keeps_its_alpha(tmp_path):
    export_peft(adapted("multilora"), tmp_path / "multi")
    config = json.loads((tmp_path / "multi" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (3 * 4, 3 * 16.0)  # n r, and lora_alpha / R = alpha / r
    tensors = load_file(tmp_path / "multi" / "adapter_model.safetensors")
    assert tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].shape == (12, 32)
    assert tensors["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"].shape == (32, 12)
    export_peft(adapted("lora"), tmp_path / "lora")
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (4, 16.0)


def test_one_task_goes_into_the_folder_itself(tmp_path, input_ids):
    model = adapted("moelora")
    assert export_peft(model, tmp_path / "piqa", task="piqa") == [tmp_path / "piqa"]
    assert (
        peft_logits(tmp_path / "piqa", input_ids) - samora_logits(model, input_ids, "piqa")
    ).abs().max() < TOLERANCE
    with pytest.raises(ValueError, match=r"unknown task 'mnli'.*\['arc_easy', 'piqa', 'boolq'\]"):
        export_peft(model, tmp_path / "x", task="mnli")


def test_export_never_overwrites_a_samora_adapter(tmp_path):
    model = adapted("lora")
    samora.save_adapter(model, tmp_path / "adapter")
    before = (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="overwrite"):
        export_peft(tmp_path / "adapter", tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").read_bytes() == before
    export_peft(model, tmp_path / "peft")
    export_peft(model, tmp_path / "peft")  # re-exporting over an earlier export is fine


@pytest.mark.parametrize("case", TOKEN_ROUTED)
def test_token_routed_methods_refuse_with_the_reason(case, tmp_path):
    model = adapted(case)
    samora.save_adapter(model, tmp_path / "adapter")
    for source in (model, tmp_path / "adapter"):
        with pytest.raises(samora.NotMergeableError, match="routes per token"):
            export_peft(source, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()


def test_cli_export_writes_per_task_folders_and_refuses_token_routing(tmp_path, capsys):
    samora.save_adapter(adapted("moelora"), tmp_path / "run" / "adapter")
    assert main(["export", str(tmp_path / "run"), "--to", "peft", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(TASKS)
    assert "PEFT LoRA" in capsys.readouterr().out
    samora.save_adapter(adapted("hydralora"), tmp_path / "hydra")
    assert main(["export", str(tmp_path / "hydra"), "--to", "peft", str(tmp_path / "h")]) == 1
    assert "routes per token" in capsys.readouterr().err


@pytest.mark.parametrize("rslora", [False, True])
def test_a_peft_lora_loads_in_samora_with_identical_logits(rslora, tmp_path, input_ids):
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "o_proj"],
        init_lora_weights=False,
        use_rslora=rslora,
        lora_dropout=0.05,
    )
    model = peft.get_peft_model(tiny_model("llama"), config).eval()
    model.save_pretrained(tmp_path / "peft")
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
    loaded = samora.load_adapter(tiny_model("llama"), tmp_path / "peft").eval()
    assert samora.adapter_of(loaded).config.method == "lora"
    assert (samora_logits(loaded, input_ids) - expected).abs().max() < TOLERANCE
    assert samora.trainable_parameters(loaded).trainable == 0
    assert samora.adapter_of(loaded).config.dropout == 0.05


def test_samora_rejects_peft_options_a_lora_cannot_hold(tmp_path):
    config = peft.LoraConfig(r=4, target_modules=["q_proj"], use_dora=True)
    peft.get_peft_model(tiny_model("llama"), config).save_pretrained(tmp_path / "dora")
    base = tiny_model("llama")
    with pytest.raises(ValueError, match="DoRA"):
        samora.load_adapter(base, tmp_path / "dora")
    assert not hasattr(base, "samora_adapter")
    peft.get_peft_model(
        tiny_model("llama"), peft.IA3Config(target_modules=["k_proj"], feedforward_modules=[])
    ).save_pretrained(tmp_path / "ia3")
    with pytest.raises(ValueError, match="PEFT 'IA3' adapter"):
        samora.load_adapter(base, tmp_path / "ia3")


def test_peft_and_transformers_pointed_at_a_samora_folder_name_samora(tmp_path):
    tiny_model("llama").save_pretrained(tmp_path / "base")
    from transformers import AutoModelForCausalLM

    model = samora.get_model(AutoModelForCausalLM.from_pretrained(tmp_path / "base"), samora.LoRAConfig(r=4))
    samora.save_adapter(model, tmp_path / "adapter")
    with pytest.raises(KeyError, match=r"samora\.load_adapter"):
        peft.PeftModel.from_pretrained(tiny_model("llama"), str(tmp_path / "adapter"))
    with pytest.raises(KeyError, match=r"samora\.load_adapter"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "adapter")
    assert samora.read_adapter_config(tmp_path / "adapter")["base_model_name_or_path"] == str(tmp_path / "base")


def test_gpt2_conv1d_layers_export_too(tmp_path, input_ids):
    """GPT-2 stores its projections as Conv1D (d_in, d_out); PEFT's LoRA factors have the same shapes."""
    model = samora.get_model(
        tiny_model("gpt2"), samora.MultiLoRAConfig(r=2, num_experts=2, target_modules=["c_attn", "c_proj"])
    )
    with torch.no_grad():
        for layer in samora.adapter_of(model).layers.values():
            for name, parameter in layer.named_parameters():
                if not name.startswith("base_layer."):
                    parameter.normal_(0.0, 0.3)
    samora.save_adapter(model, tmp_path / "adapter")
    export_peft(tmp_path / "adapter", tmp_path / "peft")
    loaded = peft.PeftModel.from_pretrained(tiny_model("gpt2"), str(tmp_path / "peft")).eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
        assert (loaded(input_ids=input_ids).logits - expected).abs().max() < TOLERANCE
        assert (tiny_model("gpt2")(input_ids=input_ids).logits - expected).abs().max() > 1e-2


def test_the_exportable_methods_are_those_whose_layer_gives_lora_factors():
    exportable = {name for name, (_, layer_class) in samora.METHODS.items() if layer_class.has_lora_factors()}
    assert exportable == {CASES[case](TASKS).method for case in EXPORTABLE}
    assert not exportable & {CASES[case](TASKS).method for case in TOKEN_ROUTED}
