"""Parameter accounting (counts without adapting, budget matching) and the generated methods table."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import samora
from samora.methods import METHODS
from samora.methods.lora import LoRALayer
from samora.run import method_docs
from tests.helpers import TARGETS, tiny_model
from tests.method_cases import CASES

TASKS = ["alpha", "beta", "gamma"]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "methods.md"


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_count_without_adapting_equals_trainable_parameters_of_adapted_model(case, arch):
    config = dataclasses.replace(CASES[case](list(TASKS)), target_modules=TARGETS[arch])
    model = tiny_model(arch)
    predicted = samora.adapter_parameter_count(model, config)
    assert not hasattr(model, "samora_adapter")  # counting did not adapt it
    assert predicted == samora.trainable_parameters(samora.get_model(model, config)).trainable > 0


# Per-module counts from the methods' papers and released code (T tasks), written out independently.
REFERENCE_FORMULAS = {
    "lora": (samora.LoRAConfig(r=4), lambda c, i, o, t: c.r * (i + o)),
    "multilora": (samora.MultiLoRAConfig(r=4, num_experts=3), lambda c, i, o, t: c.num_experts * (c.r * (i + o) + o)),
    "hydralora": (
        samora.HydraLoRAConfig(r=4, num_experts=3),
        lambda c, i, o, t: c.r * i + c.num_experts * c.r * o + c.num_experts * i,
    ),
    "mtllora": (
        samora.MTLLoRAConfig(r=4, num_experts=3, tasks=TASKS),
        lambda c, i, o, t: c.r * i + c.num_experts * c.r * o + t * c.r**2 + t * c.num_experts,
    ),
    # The released code counts (T+1) d_te; the extra row is unused in the released code (see methods/moelora.py).
    "moelora": (
        samora.MoELoRAConfig(r=8, num_experts=4, task_dim=16, tasks=TASKS),
        lambda c, i, o, t: c.r * (i + o) + (t + 1) * c.task_dim + c.task_dim * c.num_experts - c.task_dim,
    ),
    # The released code's count (d_g = 8) plus the paper's b_gate, eq. (6), which that code omits.
    "samora": (
        samora.SAMoRAConfig(r=4, num_experts=3, tasks=TASKS),
        lambda c, i, o, t: c.r * i + c.num_experts * c.r * o + c.num_experts * c.r + c.r + 8 * t + 8 + 1,
    ),
    "smora": (samora.SMoRAConfig(r=8, top_k=2), lambda c, i, o, t: c.r * (i + o) + c.r * i),  # + router R
    "moore": (
        samora.MoOREConfig(r=4, num_experts=8, task_dim=5, tasks=TASKS),
        lambda c, i, o, t: (
            i * c.num_experts + c.num_experts * min(i, o) + t * c.task_dim + c.task_dim * min(i, o) + c.r * i
        ),
    ),
}


@pytest.mark.parametrize(("d_in", "d_out"), [(32, 32), (32, 16), (64, 200)])
@pytest.mark.parametrize("method", sorted(REFERENCE_FORMULAS))
def test_module_count_matches_reference_closed_form(method, d_in, d_out):
    config, formula = REFERENCE_FORMULAS[method]
    assert config.method == method
    assert samora.module_parameter_count(config, d_in, d_out) == formula(config, d_in, d_out, len(TASKS))


def test_meta_device_model_counts_like_a_real_one():
    from transformers import LlamaForCausalLM

    real = tiny_model("llama")
    with torch.device("meta"):
        meta = LlamaForCausalLM(real.config)
    config = samora.SAMoRAConfig(r=4, tasks=TASKS)
    assert all(p.is_meta for p in meta.parameters())
    assert samora.adapter_parameter_count(meta, config) == samora.adapter_parameter_count(real, config)


def lora_counts_by_rank(model, ranks):
    """LoRA's count for each rank from the closed form r (d_in + d_out), summed over the targets."""
    per_rank = sum(
        d_in + d_out
        for d_in, d_out in (
            samora.methods.base.linear_shape(m)[:2]
            for m in samora.inject.find_targets(model, TARGETS["llama"]).values()
        )
    )
    return {r: r * per_rank for r in ranks}


def test_lora_rank_matched_to_samora_budget():
    model = tiny_model("llama")
    samora_config = samora.SAMoRAConfig(r=8, num_experts=3, tasks=TASKS)
    budget = samora.adapter_parameter_count(model, samora_config)
    match = samora.match_parameter_budget(model, samora.LoRAConfig(), samora_config, candidates=range(1, 65))
    counts = lora_counts_by_rank(model, range(1, 65))
    best_rank = min(counts, key=lambda r: (abs(counts[r] - budget), counts[r]))
    assert match.config.r == best_rank and match.count == counts[best_rank] and match.budget == budget
    assert abs(match.relative_gap) <= abs(counts[best_rank + 1] - budget) / budget
    assert match.config.method == "lora" and match.config.r != samora.LoRAConfig().r


def test_match_number_of_experts_and_skip_invalid_sizes():
    model = tiny_model("llama")
    budget = 20_000
    match = samora.match_parameter_budget(
        model, samora.MultiLoRAConfig(r=2), budget, size="num_experts", candidates=range(1, 33)
    )
    counts = {
        n: samora.adapter_parameter_count(model, samora.MultiLoRAConfig(r=2, num_experts=n)) for n in range(1, 33)
    }
    assert counts[match.config.num_experts] == min(counts.values(), key=lambda c: abs(c - budget))
    moe = samora.match_parameter_budget(
        model, samora.MoELoRAConfig(num_experts=4, tasks=TASKS), budget, candidates=range(1, 65)
    )
    assert moe.config.r % 4 == 0  # ranks the 4 experts do not divide were skipped


def test_match_rejects_a_non_integer_size():
    with pytest.raises(ValueError, match=r"size must name an int field of LoRAConfig: one of \['r'\]"):
        samora.match_parameter_budget(tiny_model("llama"), samora.LoRAConfig(), 1000, size="alpha")
    with pytest.raises(ValueError, match="no candidate value of r is valid"):
        samora.match_parameter_budget(
            tiny_model("llama"), samora.MoELoRAConfig(num_experts=4, tasks=TASKS), 1000, candidates=[3, 5]
        )


def test_committed_methods_table_is_up_to_date():
    assert DOCS.is_file(), "docs/methods.md is missing; run: python -m samora.run.method_docs"
    assert DOCS.read_text() == method_docs.methods_table(), (
        "docs/methods.md is stale; run: python -m samora.run.method_docs"
    )


def test_table_has_a_row_per_method_with_flags_from_the_class(tmp_path):
    table = method_docs.methods_table()
    for name, (config_class, _) in METHODS.items():
        row = next(line for line in table.splitlines() if f"`{name}`" in line)
        assert method_docs.MERGEABLE[config_class.merge_kind] in row
        assert config_class.card.equation in row
    assert method_docs.main([str(tmp_path / "methods.md")]) == 0
    assert method_docs.main(["--check", str(tmp_path / "methods.md")]) == 0
    (tmp_path / "methods.md").write_text("stale\n")
    assert method_docs.main(["--check", str(tmp_path / "methods.md")]) == 1


def test_method_without_card_is_named(monkeypatch):
    @dataclass
    class NoCardConfig(samora.LoRAConfig):
        method = "nocard"
        card = None

    monkeypatch.setitem(METHODS, "nocard", (NoCardConfig, LoRALayer))
    with pytest.raises(ValueError, match="NoCardConfig has no 'card'"):
        method_docs.methods_table()
