"""QLoRA: every method trains through the Trainer, saves, reloads and evaluates on a 4-bit base.

bitsandbytes 0.50.2 has a CPU backend, so these run here (no GPU): the tiny Llama of ``tiny_model_dir``
is loaded with ``model.quantization=4bit`` (nf4, double quantisation, as the QLoRA paper), adapted,
trained for two steps by :func:`samora.training.train` (the Hugging Face Trainer, which refuses a
quantized model that carries no adapters it recognises) and saved; the adapter folder alone then
reloads the same 4-bit base (the adapter records its quantization) and gives the same logits.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

pytest.importorskip("bitsandbytes")
pytest.importorskip("peft")

import samora  # noqa: E402
from samora.adapter_files import adapter_state_dict  # noqa: E402
from samora.cli import main  # noqa: E402
from samora.methods.base import NotMergeableError  # noqa: E402
from samora.methods.quantized import dequantized_weight  # noqa: E402
from samora.methods.singular_values import top_singular_values  # noqa: E402
from samora.run.model_loading import load_adapted, load_base_model  # noqa: E402
from samora.run.run_config import load_run_config  # noqa: E402
from samora.run.sections import ModelSection  # noqa: E402
from samora.training import train  # noqa: E402
from tests.helpers import TASKS, Collator, run_overrides, tiny_dataset  # noqa: E402
from tests.method_cases import METHOD_CASES  # noqa: E402

FIRST_CASES = {method: next(iter(cases.values())) for method, cases in METHOD_CASES.items()}


def quantized_base(model_dir, quantization="4bit"):
    model, _ = load_base_model(str(model_dir), "float32", ModelSection(quantization=quantization))
    return model


def is_4bit(module) -> bool:
    return type(module.weight).__name__ == "Params4bit"


@pytest.mark.parametrize("method", sorted(FIRST_CASES))
def test_every_method_trains_saves_and_reloads_on_a_4bit_base(method, tiny_model_dir, tmp_path):
    model = samora.get_model(quantized_base(tiny_model_dir), FIRST_CASES[method](list(TASKS)))
    layers = samora.adapter_of(model).layers.values()
    assert all(is_4bit(layer.base_layer) for layer in layers)
    start = {k: v.clone() for k, v in adapter_state_dict(model).items()}
    result = train(
        model,
        None,
        tiny_dataset(8),
        output_dir=tmp_path / "adapter",
        data_collator=Collator(),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        precision="fp32",
        progress="lines",
    )
    assert result.global_step == 2 and math.isfinite(result.train_loss)
    trained = adapter_state_dict(model)
    assert max((trained[k] - start[k]).abs().max().item() for k in start) > 1e-3  # the optimizer moved them

    recorded = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_quantization"]
    assert recorded["load_in_4bit"] and recorded["bnb_4bit_quant_type"] == "nf4"
    # the adapter folder alone: its recorded quantization reloads the same 4-bit base
    reloaded, _, _ = load_adapted(tmp_path / "adapter", load_run_config(overrides=[f"model.name={tiny_model_dir}"]))
    assert all(is_4bit(layer.base_layer) for layer in samora.adapter_of(reloaded).layers.values())
    batch = Collator()([tiny_dataset(4, seed=1)[i] for i in range(4)])
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "task_ids")}
    with torch.no_grad():
        expected, got = model.eval()(**inputs).logits, reloaded.eval()(**inputs).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_samora_singular_values_come_from_the_dequantised_weight(tiny_model_dir):
    config = samora.SAMoRAConfig(r=4, num_experts=3, tasks=list(TASKS))
    model = samora.get_model(quantized_base(tiny_model_dir), config)
    layer = samora.adapter_of(model).layers["model.layers.0.self_attn.q_proj"]
    dequantised = dequantized_weight(layer.base_layer)
    assert dequantised.shape == (layer.out_features, layer.in_features)
    torch.testing.assert_close(layer.samora_S.detach(), top_singular_values(dequantised, 4))


def test_the_8bit_base_dequantises_to_its_scaled_int8_rows(tiny_model_dir):
    base = quantized_base(tiny_model_dir, "8bit")
    model = samora.get_model(base, samora.LoRAConfig(r=4, tasks=list(TASKS)))
    layer = samora.adapter_of(model).layers["model.layers.0.self_attn.q_proj"]
    weight = layer.base_layer.weight
    assert type(weight).__name__ == "Int8Params"
    expected = weight.data.float() * weight.SCB.float().view(-1, 1) / 127
    torch.testing.assert_close(layer.base_weight(), expected)


def test_samora_trains_through_the_trainer_on_an_8bit_base(tiny_model_dir, tmp_path):
    model = samora.get_model(quantized_base(tiny_model_dir, "8bit"), samora.SAMoRAConfig(r=4, tasks=list(TASKS)))
    start = {k: v.clone() for k, v in adapter_state_dict(model).items()}
    options = dict(per_device_train_batch_size=4, learning_rate=1e-2, precision="fp32", progress="lines")
    result = train(model, None, tiny_dataset(8), output_dir=tmp_path, data_collator=Collator(), max_steps=2, **options)
    assert result.global_step == 2 and math.isfinite(result.train_loss)
    trained = adapter_state_dict(model)
    assert max((trained[k] - start[k]).abs().max().item() for k in start) > 1e-3


def test_merging_into_a_quantized_base_is_refused_naming_the_way_out(tiny_model_dir):
    model = samora.get_model(quantized_base(tiny_model_dir), samora.LoRAConfig(r=4, tasks=list(TASKS)))
    with pytest.raises(NotMergeableError, match="quantized .*4-bit.*Load the base model unquantized"):
        samora.merge(model)
    assert samora.adapter_of(model) is not None  # nothing was changed


def test_unload_removes_the_mark_that_lets_the_trainer_accept_the_quantized_model(tiny_model_dir):
    from transformers.trainer_utils import validate_quantization_for_training

    model = samora.get_model(quantized_base(tiny_model_dir), samora.LoRAConfig(r=4, tasks=list(TASKS)))
    validate_quantization_for_training(model)  # accepted: it carries trainable adapters
    samora.unload(model)
    with pytest.raises(ValueError, match="purely quantized"):
        validate_quantization_for_training(model)


def test_samora_train_and_eval_of_the_run_folder_on_a_4bit_base(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    # eval.before (the default): the 4-bit base is evaluated, then trained (its layers must stay trainable)
    overrides = run_overrides(tiny_model_dir, run_dir, "model.quantization=4bit")
    assert main(["train", "--preset", "demo", *overrides]) == 0
    assert "quantization: 4bit" in (run_dir / "config.yaml").read_text()
    after = json.loads((run_dir / "metrics.json").read_text())["after"]["tasks"]
    assert main(["eval", "--adapter", str(run_dir)]) == 0  # the run's config.yaml reloads the 4-bit base
    evaluated = json.loads((run_dir / "evals" / "eval-001" / "eval.json").read_text())["tasks"]
    assert {task: entry["metrics"] for task, entry in evaluated.items()} == {
        task: entry["metrics"] for task, entry in after.items()
    }


def test_a_qlora_run_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    def run(resume: bool):
        model = samora.get_model(quantized_base(tiny_model_dir), samora.SAMoRAConfig(r=4, tasks=list(TASKS)))
        options = dict(per_device_train_batch_size=4, learning_rate=1e-2, precision="fp32", progress="lines")
        result = train(
            model,
            None,
            tiny_dataset(8),
            output_dir=tmp_path,
            data_collator=Collator(),
            max_steps=2,
            save_steps=1,
            resume=resume,
            **options,
        )
        return result, adapter_state_dict(model)

    _, straight = run(resume=False)
    shutil.rmtree(tmp_path / "checkpoint-2")  # as if killed after the first checkpoint
    resumed, resumed_adapter = run(resume=True)
    assert resumed.resumed_from == str(tmp_path / "checkpoint-1") and resumed.global_step == 2
    for key, value in straight.items():
        torch.testing.assert_close(resumed_adapter[key], value, msg=key)
