"""The benchmark harness: per-expert activation check on every method, a tiny end-to-end run.

No timing assertions: the numbers depend on the machine. These tests check that the harness measures
what it says, computes its ratios from its own measurements, and writes its files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import pytest
import torch
from torch import nn

import samora
from samora.benchmark import add_bench_arguments, main, run_bench
from samora.benchmark.contenders import (
    FLOOR,
    METHOD,
    PEFT_LORA,
    BenchSettings,
    Contender,
    expert_count,
    load_bench_model,
)
from samora.benchmark.measure import MeasureOptions, is_per_expert_activation, median_memory, per_expert_activations
from samora.benchmark.memory import measure_peak_memory
from samora.benchmark.summaries import check_targets, paired_ratios, summary
from samora.benchmark.sweeps import run_sweep, sparse_crossover
from samora.benchmark.timing import Generation, TrainingStep, clock_for, interleave
from samora.methods import METHODS
from samora.methods.samora import SAMoRALayer
from samora.routing import RoutingState

TINY = BenchSettings(model="tiny", batch=2, seq_len=8, num_tasks=3)
NO_MEMORY = MeasureOptions(rounds=1, warmup=0, memory=False, generation_tokens=0)


@pytest.fixture(scope="module")
def tiny_base():
    return load_bench_model(TINY)


def shape_check(base, contender: Contender, settings: BenchSettings = TINY) -> list[tuple[int, ...]]:
    step = TrainingStep(contender.build(base, settings), contender, settings)
    adapter = step.model.samora_adapter
    return per_expert_activations(
        step.run,
        tokens=settings.batch * settings.seq_len,
        experts=expert_count(adapter.config),
        d_outs=[layer.out_features for layer in adapter.layers.values()],
    )


def method_fields(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(METHODS[method][0])}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_no_registered_method_builds_a_per_expert_activation(method, tiny_base):
    for overrides in ({}, {"num_experts": 4} if "num_experts" in method_fields(method) else {}):
        assert shape_check(tiny_base, Contender(method, METHOD, method, overrides)) == [], overrides


def test_shape_check_catches_stacked_expert_outputs(tiny_base, monkeypatch):
    """SAMoRA's plain reference path stacks every expert's output: the check must see it."""
    monkeypatch.setattr(SAMoRALayer, "delta", SAMoRALayer.delta_reference)
    found = shape_check(tiny_base, Contender("samora", METHOD, "samora", {"num_experts": 5}))
    assert (2, 8, 5, 64) in found and (2, 8, 5, 32) in found  # q/o (64) and k/v (2 heads x 16)


@pytest.mark.parametrize(
    "shape,expected",
    [
        ((2, 8, 5, 64), True),
        ((5, 2, 8, 64), True),
        ((16, 5, 64), True),
        ((2, 8, 320), False),
        ((2, 8, 5, 63), False),
        ((5, 64, 16), True),
    ],
)
def test_per_expert_shape_rule(shape, expected):
    assert is_per_expert_activation(shape, tokens=16, experts=5, d_out=64) is expected
    assert not is_per_expert_activation((2, 8, 1, 64), tokens=16, experts=1, d_out=64)  # N = 1 is no mixture


def test_contenders_share_frozen_weights_and_train_only_adapters(tiny_base):
    for contender in (Contender(FLOOR, FLOOR), Contender(PEFT_LORA, PEFT_LORA), Contender("samora", METHOD, "samora")):
        model = contender.build(tiny_base, TINY)
        embedding = model.get_input_embeddings().weight
        assert embedding is tiny_base.get_input_embeddings().weight
        step = TrainingStep(model, contender, TINY)
        assert step() > 0
        assert ("task_ids" in step.inputs) is (contender.kind == METHOD)
        assert embedding.grad is None


def test_interleave_rotates_the_order_and_warms_up_untimed():
    calls = []
    runs = {name: (lambda name=name: calls.append(name) or 1.0) for name in "abc"}
    timings = interleave(runs, rounds=3, warmup=2)
    assert calls[:6] == list("aabbcc")
    assert calls[6:] == list("abc") + list("bca") + list("cab")
    assert timings == {name: [1.0, 1.0, 1.0] for name in "abc"}


def test_generation_times_exactly_the_requested_tokens(tiny_base):
    contender = Contender("samora", METHOD, "samora")
    run = Generation(contender.build(tiny_base, TINY), contender, TINY, batch=2, prompt_len=4, new_tokens=3)
    assert run() > 0 and run.kwargs["task_ids"].tolist() == [0, 1]


def test_peak_memory_runs_in_a_fresh_process():
    figures = measure_peak_memory(Contender("lora", METHOD, "lora"), TINY, steps=1, threads=1)
    assert figures["peak_mb"] >= figures["before_steps_mb"] > 0
    assert figures["step_mb"] == pytest.approx(figures["peak_mb"] - figures["before_steps_mb"])
    assert figures["measure"] in ("peak_rss_during_steps", "lifetime_peak_rss")
    assert figures["tensor_peak_mb"] > 0


def test_memory_repeats_report_medians_and_keep_every_repeat():
    repeats = [
        {"peak_mb": 10.0, "tensor_peak_mb": 4.0, "measure": "peak_rss_during_steps"},
        {"peak_mb": 12.0, "tensor_peak_mb": 4.0, "measure": "peak_rss_during_steps"},
        {"peak_mb": 30.0, "tensor_peak_mb": 4.0, "measure": "peak_rss_during_steps"},
    ]
    assert median_memory(repeats) == {
        "peak_mb": 12.0,
        "tensor_peak_mb": 4.0,
        "measure": "peak_rss_during_steps",
        "repeats": repeats,
    }


def test_bench_end_to_end_writes_results_with_ratios_from_its_own_timings(tmp_path):
    code = main(
        [
            "--model",
            "tiny",
            "--methods",
            "lora,samora",
            "--batch",
            "2",
            "--seq-len",
            "8",
            "--num-tasks",
            "3",
            "--rounds",
            "3",
            "--warmup",
            "0",
            "--no-memory",
            "--generation-tokens",
            "2",
            "--generation-prompt",
            "4",
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    comparison = results["comparison"]
    assert list(comparison) == [FLOOR, PEFT_LORA, "lora", "samora"]
    reference, floor = comparison[PEFT_LORA], comparison[FLOOR]
    for name, entry in comparison.items():
        assert len(entry["step_s"]) == 3 and entry["step"] == summary(entry["step_s"])
        assert entry["tokens_per_s"] == pytest.approx(16 / entry["step"]["median"])
        assert entry["step_ratio_to_peft_lora"] == summary(paired_ratios(entry["step_s"], reference["step_s"]))
        assert entry["generation_ratio_to_peft_lora"] == summary(
            paired_ratios(entry["generation_s_per_token"], reference["generation_s_per_token"])
        )
        if name != FLOOR:
            assert entry["adapter_share_of_step"] == pytest.approx(
                1 - floor["step"]["median"] / entry["step"]["median"]
            )
    assert comparison["samora"]["per_expert_activations"] == []
    assert comparison["samora"]["config"]["dropout"] == comparison[PEFT_LORA]["config"]["lora_dropout"] == 0.05
    assert results["settings"]["batch"] == 2 and results["machine"]["device"] == "cpu"
    targets = {t["target"]: t for t in results["targets"]}
    assert (
        targets["samora training step / PEFT LoRA"]["measured"]
        == comparison["samora"]["step_ratio_to_peft_lora"]["median"]
    )
    assert targets["samora peak memory (RSS) / PEFT LoRA"]["met"] is None  # not measured in this run
    text = (tmp_path / "bench.md").read_text()
    assert "| contender |" in text and "| samora |" in text and "## Targets" in text
    assert (tmp_path / "comparison.png").stat().st_size > 0


def test_experts_sweep_pairs_each_point_with_its_references(tiny_base):
    sweep = run_sweep("experts", [1, 2], "samora", TINY, tiny_base, NO_MEMORY, log=lambda _: None)
    roles = [(p["name"], p["role"], p["value"]) for p in sweep["points"]]
    assert roles == [
        (FLOOR, FLOOR, None),
        (PEFT_LORA, PEFT_LORA, None),
        ("samora[N=1]", METHOD, 1),
        ("samora[N=2]", METHOD, 2),
    ]
    floor, reference = sweep["points"][:2]
    for point in sweep["points"][2:]:
        assert point["step_ratio_to_peft_lora"] == summary(paired_ratios(point["step_s"], reference["step_s"]))
        assert point["adapter_share_of_step"] == pytest.approx(1 - floor["step"]["median"] / point["step"]["median"])


def test_active_ranks_sweep_measures_dense_and_sparse_smora_and_their_crossover(tiny_base):
    sweep = run_sweep("active_ranks", [1, 4], "smora", TINY, tiny_base, NO_MEMORY, log=lambda _: None, sparse_ranks=16)
    methods = [p for p in sweep["points"] if p["role"] == METHOD]
    assert [(p["config"]["top_k"], p["config"]["compute"], p["config"]["r"]) for p in methods] == [
        (1, "dense", 16),
        (1, "sparse", 16),
        (4, "dense", 16),
        (4, "sparse", 16),
    ]
    ratios = sweep["crossover"]["ratios"]
    assert [(p["top_k"], p["share"]) for p in ratios] == [(1, 1 / 16), (4, 4 / 16)]
    assert ratios[1]["sparse_over_dense"] == summary(paired_ratios(methods[3]["step_s"], methods[2]["step_s"]))


def test_crossover_is_the_largest_share_below_the_first_dense_win():
    def rows(times):  # k -> (sparse step, dense step), one round each
        return [
            {"role": METHOD, "value": k, "config": {"compute": mode, "r": 64}, "step_s": [t]}
            for k, (sparse, dense) in times.items()
            for mode, t in (("sparse", sparse), ("dense", dense))
        ]

    crossover = sparse_crossover(rows({1: (0.5, 1.0), 2: (0.9, 1.0), 4: (1.2, 1.0), 8: (0.8, 1.0)}))
    assert crossover["sparse_faster_up_to_share"] == 2 / 64 and crossover["dense_faster_from_share"] == 4 / 64
    assert sparse_crossover(rows({1: (1.5, 1.0)}))["sparse_faster_up_to_share"] is None


def test_targets_are_judged_against_their_limits():
    def ratio(median):
        return {"median": median, "min": median, "max": median}

    comparison = {
        "samora": {
            "step_ratio_to_peft_lora": ratio(1.05),
            "memory": {"peak_ratio_to_peft_lora": 1.2, "tensor_peak_ratio_to_peft_lora": 1.01},
            "generation_ratio_to_peft_lora": ratio(1.0),
            "per_expert_activations": [],
        },
        "other": {"per_expert_activations": [(2, 8, 5, 64)]},
    }
    sweeps = {
        "experts": {
            "points": [
                {"value": 1, "role": METHOD, "step_s": [1.0, 2.0]},
                {"value": 16, "role": METHOD, "step_s": [1.5, 2.2]},
            ]
        }
    }
    met = {t["target"]: t["met"] for t in check_targets(comparison, sweeps)}
    assert list(met.values()) == [True, False, True, False, True, None, False]  # no active_ranks sweep: None
    measured = check_targets(comparison, sweeps)[3]["measured"]
    assert measured == pytest.approx(1.3)  # median of the round ratios 1.5 and 1.1


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--methods", "nope"], "unknown method 'nope'"),
        (["--no-comparison"], "nothing to run"),
        (["--sweep", "experts", "--sweep-method", "lora", "--no-comparison"], "needs a method with num_experts"),
        (
            ["--sweep", "active_ranks", "--active-ranks-values", "8", "--active-ranks-r", "4", "--no-comparison"],
            "top_k must be an int in",
        ),
        (["--batch", "0"], "batch must be a positive int"),
        (["--dtype", "float32", "--dropout", "1.5"], "dropout must be in"),
    ],
)
def test_bad_arguments_are_clear_errors(argv, message, tmp_path):
    args = add_bench_arguments(argparse.ArgumentParser()).parse_args(
        ["--model", "tiny", "--rounds", "1", "--no-memory", "--output", str(tmp_path), *argv]
    )
    with pytest.raises(ValueError, match=message):
        run_bench(args)


def test_clock_choice_is_checked():
    with pytest.raises(ValueError, match="clock must be one of"):
        clock_for("sundial", "cpu")
    with pytest.raises(ValueError, match="on CUDA use --clock wall"):
        clock_for("cpu", "cuda")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="add --threads 1"):
            clock_for("cpu", "cpu")
        torch.set_num_threads(1)
        assert clock_for("cpu", "cpu") is time.thread_time
    finally:
        torch.set_num_threads(threads)


def test_unknown_contender_kind_and_override_are_rejected():
    with pytest.raises(ValueError, match="contender kind"):
        Contender("x", "nope")
    with pytest.raises(ValueError, match="only takes an 'r' override"):
        Contender(PEFT_LORA, PEFT_LORA, overrides={"num_experts": 2})
    with pytest.raises(ValueError, match="valid fields"):
        Contender("samora", METHOD, "samora", {"experts": 2}).method_config(TINY)


@pytest.mark.parametrize("overrides", [{}, {"router": "linear"}, {"scaling": False}])
@pytest.mark.parametrize("task_ids", [[0, 2, -1], None])
def test_samora_fast_path_matches_reference_values_and_gradients(overrides, task_ids):
    """The speed work on SAMoRALayer.delta keeps its results: values and every gradient agree."""
    torch.manual_seed(0)
    config = samora.SAMoRAConfig(r=4, num_experts=3, tasks=["a", "b", "c"], dropout=0.0, **overrides)
    layer = SAMoRALayer(nn.Linear(12, 10), config, RoutingState())
    layer.reset_parameters()
    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            if name.startswith("samora_"):
                parameter.add_(0.3 * torch.randn_like(parameter))
    ids = None if task_ids is None else torch.tensor(task_ids)
    x = torch.randn(3, 5, 12)
    results = []
    for path in (layer.delta, layer.delta_reference):
        layer.zero_grad()
        inputs = x.clone().requires_grad_(True)
        out = path(inputs, ids)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads = {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}
        results.append((out.detach(), inputs.grad, grads))
    (fast, fast_x, fast_grads), (plain, plain_x, plain_grads) = results
    assert torch.allclose(fast, plain, atol=1e-6, rtol=1e-5)
    assert torch.allclose(fast_x, plain_x, atol=1e-6, rtol=1e-5)
    assert fast_grads.keys() == plain_grads.keys() and fast_grads
    for name in fast_grads:
        assert torch.allclose(fast_grads[name], plain_grads[name], atol=1e-5, rtol=1e-4), name
