"""Small interop gaps (issue #24, defect 10): an exported PEFT folder names a base PEFT can load,
``samora.load_adapter`` accepts a run folder, ``samora presets`` prints whole descriptions."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM

import samora
from samora.cli import main
from samora.run.run_config import PRESETS_DIR, preset_names
from tests.helpers import adapter_tensors


def lora_on(base, **config):
    model = samora.get_model(base, samora.LoRAConfig(r=2, tasks=["a"], **config))
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(0, 0.1)
    return model


def exported_base(model, folder) -> str:
    samora.export_peft(model, folder)
    return json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]


def test_an_export_names_the_hub_id_of_the_bundled_alias(tmp_path, tiny_model_dir):
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = lora_on(base, base_model="smollm2-135m-instruct")
    assert exported_base(model, tmp_path / "peft") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_an_export_names_the_local_base_folder_and_peft_loads_it(tmp_path, tiny_model_dir, monkeypatch):
    import peft

    monkeypatch.chdir(tiny_model_dir.parent)  # the user names the folder relative to here
    model = lora_on(AutoModelForCausalLM.from_pretrained(tiny_model_dir.name))
    assert exported_base(model, tmp_path / "peft") == str(tiny_model_dir.resolve())
    monkeypatch.chdir(tmp_path)
    loaded = peft.AutoPeftModelForCausalLM.from_pretrained(tmp_path / "peft")
    ids = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


def test_load_adapter_accepts_a_run_folder(tmp_path, tiny_model_dir):
    model = lora_on(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    samora.save_adapter(model, tmp_path / "run" / "adapter")
    (tmp_path / "run" / "config.yaml").write_text("adapter: {method: lora}\n")
    loaded = samora.load_adapter(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "run")
    expected, got = adapter_tensors(model), adapter_tensors(loaded)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_presets_prints_each_whole_description(capsys):
    assert main(["presets"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    for name in preset_names():
        lines = (PRESETS_DIR / f"{name}.yaml").read_text().splitlines()
        comment = [
            line.lstrip("#").strip() for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith("#"))]
        ]
        assert len(comment) > 1 and " ".join(" ".join(comment).split()) in printed, name  # every line, not the first
