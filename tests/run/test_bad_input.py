"""Every bad input of issue #24's table (67 configs and overrides tried as a user would, plus the ones
found since) gets a clear error naming the key and exit 2: before the model loads, or, for what needs
the model (a rank above a layer's width, target modules it lacks, prompts that leave no target), right
after it loads; in both cases before anything is written. In-process, on the tiny model."""

from __future__ import annotations

import pytest
import torch

from samora.cli import main
from tests.helpers import run_overrides

# (overrides, what the error must say): the error names the key
BEFORE_THE_MODEL = [
    (["adapter.r=0"], "r must be"),
    (["adapter.r=-4"], "r must be"),
    (["adapter.r=2.5"], "adapter.r must be a positive int, got 2.5"),
    (["adapter.num_experts=0"], "num_experts"),
    (["adapter.num_experts=-1"], "num_experts"),
    (["adapter.method=samorra"], "adapter.method must be one of"),
    (["adapter.temperature=0"], "temperature"),
    (["adapter.temperature=.inf"], "adapter.temperature must be a finite number"),
    (["adapter.lambda_orth=-1"], "lambda_orth"),
    (["adapter.lambda_match=abc"], "adapter.lambda_match must be a number >= 0, got 'abc'"),
    (["adapter.dropout=1.5"], "dropout"),
    (["adapter.bogus=1"], "bogus"),
    (["adapter.router=bogus"], "router"),
    (["adapter.variant=bogus"], "variant"),
    (["adapter.tasks=[x]"], "adapter.tasks is set from data.tasks"),
    (["adapter.method=lora", "adapter.alpha=0"], "alpha"),
    (["adapter.method=lora", "adapter.alpha=-5"], "alpha"),
    (["adapter.method=smora", "adapter.top_k=0"], "top_k"),
    (["adapter.method=moelora", "adapter.r=5", "adapter.num_experts=2"], "num_experts"),
    (["data.max_length=0"], "data.max_length must be"),
    (["data.tasks=[]"], "data.tasks"),
    (["data.tasks=[piqaa]"], "data.tasks: Unknown task 'piqaa'"),
    (["data.per_task_cap=0"], "data.per_task_cap must be"),
    (["data.template=bogus"], "data.template"),
    (["data.sampling=temperature"], "data.temperature must be set"),
    (["data.source=/nonexistent/folder"], "no data for"),
    (["train.max_steps=three"], "train.max_steps must be an int > 0 or null, got 'three'"),
    (["train.max_steps=0"], "train.max_steps must be"),
    (["train.max_stepz=3"], "did you mean train.max_steps?"),
    (["train.learning_rate=-1"], "train.learning_rate must be >= 0"),
    (["train.per_device_train_batch_size=0"], "train.per_device_train_batch_size must be"),
    (["train.gradient_accumulation_steps=0"], "train.gradient_accumulation_steps must be"),
    (["train.warmup_ratio=1.5"], "train.warmup_ratio (a fraction of the training steps) must be in [0, 1)"),
    (["train.weight_decay=-5"], "train.weight_decay must be"),
    (["train.save_steps=-1"], "train.save_steps must be"),
    (["train.seed=-1"], "train.seed must be"),
    (["train.on_nonfinite=ignore"], "train.on_nonfinite must be"),
    (["train.lr_scheduler_type=bogus"], "train.lr_scheduler_type must be one of"),
    (["train.optim=bogus"], "train.optim"),
    (["train.bf16=true"], "use train.precision"),
    (["train.max_grad_norm=-1"], "train.max_grad_norm must be >= 0"),
    (["train.fsdp=full_shard"], "train.fsdp needs a distributed launch"),
    (["train.report_to=wandb"], "train.report_to"),
    (["eval.batch_size=0"], "eval.batch_size must be"),
    (["eval.num_beams=0"], "eval.num_beams must be"),
    (["eval.split=bogus"], "eval.split"),
    (["eval.protocol=bogus"], "eval.protocol must be"),
    (["eval.limit=-1"], "eval.limit must be"),
    (["model.dtype=fp32"], "model.dtype must be one of"),
    (["model.name=/nonexistent/model"], "model.name '/nonexistent/model' is not a folder"),
    (["output_dir="], "output_dir must be a string, got None"),
    (["train.max_steps"], "unexpected argument 'train.max_steps'"),
    (["bogus=1"], "unknown key(s) ['bogus']"),
    (["train=5"], "train must be a mapping"),
    (["adapter=lora"], "adapter must be a mapping, got 'lora'"),
    (["compare.methods=[samora, bogus]"], "bogus"),
    (["train.learning_rate=[1"], "override 'train.learning_rate=[1': the value is not valid YAML"),
]
AFTER_THE_MODEL = [
    (["adapter.r=4096"], "adapter.r=4096 is larger than the layer"),
    (["adapter.target_modules=[nope]"], "adapter.target_modules: target_modules entries that matched no module"),
    (["adapter.target_modules=q_proj"], "give a list, e.g. adapter.target_modules=[q_proj]"),
    (["data.max_length=1"], "data.max_length=1 cuts every training target away"),
]


def refused(args: list[str], run, capsys) -> str:
    assert main(["train", *args]) == 2
    assert not run.exists()  # nothing written
    return capsys.readouterr().err


@pytest.mark.parametrize(
    "case,message", BEFORE_THE_MODEL + AFTER_THE_MODEL, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_each_bad_override_is_a_clear_error_before_anything_is_written(
    case, message, tiny_model_dir, tmp_path, capsys
):
    run = tmp_path / "run"
    error = refused([*run_overrides(tiny_model_dir, run), *case], run, capsys)
    assert "configuration error" in error and message in error, error


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused on machines without a CUDA GPU only")
def test_fp16_without_a_gpu(tiny_model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert "train.precision" in refused([*run_overrides(tiny_model_dir, run), "train.precision=fp16"], run, capsys)


def test_a_config_file_of_random_bytes_names_the_file(tiny_model_dir, tmp_path, capsys):
    config = tmp_path / "my.yaml"
    config.write_bytes(bytes(range(128, 256)) * 3)
    run = tmp_path / "run"
    assert f"{config} is not valid YAML" in refused([str(config), *run_overrides(tiny_model_dir, run)], run, capsys)


def test_a_source_folder_without_the_tasks_files_is_a_configuration_error(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    run = tmp_path / "run"
    error = refused([*run_overrides(tiny_model_dir, run), f"data.source={tmp_path / 'data'}"], run, capsys)
    assert "no data for" in error and "boolq (train split)" in error


def test_a_model_the_cli_cannot_train_says_why(tmp_path, smollm2_tokenizer, capsys):
    from transformers import T5Config, T5ForConditionalGeneration

    t5 = tmp_path / "t5"
    T5ForConditionalGeneration(T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)).save_pretrained(t5)
    smollm2_tokenizer.save_pretrained(t5)
    run = tmp_path / "run"
    error = refused([*run_overrides(t5, run)], run, capsys)
    assert f"model.name {str(t5)!r} is not a causal language model" in error


def test_an_adapter_larger_than_the_layers_it_adapts_is_warned_about(caplog):
    """adapter.num_experts=512 on 32-wide layers trained silently (bad-inputs table): legal, but it trains
    more parameters than the frozen layers hold, so it is named before anything trains."""
    import samora
    from samora.run.model_checks import check_adapter_fits
    from tests.helpers import tiny_model

    with caplog.at_level("WARNING", logger="samora"):
        check_adapter_fits(tiny_model(), samora.SAMoRAConfig(r=4, num_experts=3))
        assert not caplog.records
        check_adapter_fits(tiny_model(), samora.SAMoRAConfig(r=4, num_experts=512))
    assert "num_experts=512" in caplog.text and "frozen weights" in caplog.text
