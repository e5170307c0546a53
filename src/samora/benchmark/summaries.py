"""Summaries of repeated timings, paired ratios, and the issue's targets checked against them."""

from __future__ import annotations

import numpy as np

# The targets of the benchmark issue: (key, description, limit). A measured value <= limit meets it.
STEP_RATIO_LIMIT = 1.10  # SAMoRA (N = 3) training step vs PEFT LoRA
MEMORY_RATIO_LIMIT = 1.05  # SAMoRA peak memory vs PEFT LoRA
EXPERT_GROWTH_LIMIT = 1.25  # step time at N = 16 vs N = 1
GENERATION_RATIO_LIMIT = 1.10  # time per generated token vs PEFT LoRA (unmerged)


def summary(values: list[float]) -> dict[str, float]:
    """median, quartiles, min, max and count of repeated measurements."""
    if not values:
        raise ValueError("no measurements to summarise")
    array = np.asarray(values, dtype=float)
    q1, median, q3 = np.percentile(array, [25, 50, 75])
    return {
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(array.min()),
        "max": float(array.max()),
        "n": int(array.size),
    }


def paired_ratios(values: list[float], reference: list[float]) -> list[float]:
    """Round-by-round ratios of two interleaved series (same round, seconds apart)."""
    if len(values) != len(reference):
        raise ValueError(f"paired series differ in length: {len(values)} vs {len(reference)}")
    return [value / ref for value, ref in zip(values, reference)]


def check_targets(comparison: dict, sweeps: dict, method: str = "samora") -> list[dict]:
    """The issue's targets, each with the measured value, its limit and whether it is met.

    A target whose measurement is absent from this run (e.g. no memory, or no experts sweep) is
    listed with ``measured: None`` and ``met: None``.
    """
    entry = comparison.get(method, {})

    def median_of(*keys):
        value = entry
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    rows = [
        (f"{method} training step / PEFT LoRA", median_of("step_ratio_to_peft_lora", "median"), STEP_RATIO_LIMIT),
        (
            f"{method} peak memory (RSS) / PEFT LoRA",
            median_of("memory", "peak_ratio_to_peft_lora"),
            MEMORY_RATIO_LIMIT,
        ),
        (
            f"{method} step tensor peak / PEFT LoRA",
            median_of("memory", "tensor_peak_ratio_to_peft_lora"),
            MEMORY_RATIO_LIMIT,
        ),
        (f"{method} step time N=16 / N=1", _expert_growth(sweeps), EXPERT_GROWTH_LIMIT),
        (
            f"{method} generation time per token / PEFT LoRA (unmerged)",
            median_of("generation_ratio_to_peft_lora", "median"),
            GENERATION_RATIO_LIMIT,
        ),
    ]
    targets = [
        {"target": name, "measured": value, "limit": limit, "met": None if value is None else bool(value <= limit)}
        for name, value, limit in rows
    ]
    return targets + [_crossover_target(sweeps), _per_expert_activation_target(comparison)]


def _expert_growth(sweeps: dict) -> float | None:
    """Median paired step-time ratio of the swept method at N = 16 to N = 1; None without both points."""
    experts = sweeps.get("experts")
    if not experts:
        return None
    by_value = {p["value"]: p for p in experts["points"] if p["role"] == "method"}
    if 1 not in by_value or 16 not in by_value:
        return None
    return summary(paired_ratios(by_value[16]["step_s"], by_value[1]["step_s"]))["median"]


def _crossover_target(sweeps: dict) -> dict:
    """That SMoRA's sparse path beats its dense path up to some share k/r (the active_ranks sweep)."""
    crossover = sweeps.get("active_ranks", {}).get("crossover")
    share = crossover and crossover["sparse_faster_up_to_share"]
    return {
        "target": "SMoRA sparse path cheaper than dense below some k/r (largest such k/r)",
        "measured": share,
        "limit": "exists",
        "met": None if crossover is None else share is not None,
    }


def _per_expert_activation_target(comparison: dict) -> dict:
    """That no checked contender built a (batch x seq x N x d_out) tensor; measured: the offenders."""
    checked = {name: e["per_expert_activations"] for name, e in comparison.items() if "per_expert_activations" in e}
    offenders = sorted(name for name, shapes in checked.items() if shapes)
    return {
        "target": "no per-expert activation (batch x seq x N x d_out) in a training step",
        "measured": offenders if checked else None,
        "limit": [],
        "met": (not offenders) if checked else None,
    }
