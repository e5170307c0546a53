"""Scaling sweeps: step time and memory as functions of N, r, batch and sequence length, and SMoRA's
sparse-versus-dense crossover in the share k/r of active ranks.

Each sweep is one interleaved group: every point of the sweep, plus the frozen-base floor and PEFT's
LoRA at the same shape, runs once per round, so the curves share their noise. Points carry a
``role``: ``"method"`` (the swept method), ``"peft_lora"`` or ``"floor"``, and a ``series`` (the
line they belong to in the figure); a reference whose ``value`` is None does not depend on the
swept quantity (e.g. the floor in a rank sweep).

The ``active_ranks`` sweep runs SMoRA (r ranks, top_k = k of them active per token) with
``compute="dense"`` and ``compute="sparse"`` at every k; its ``crossover`` is the largest k/r up to
which the sparse path's step is faster than the dense one's (paired medians).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from samora.benchmark.contenders import FLOOR, METHOD, PEFT_LORA, BenchSettings, Contender
from samora.benchmark.measure import Entries, measure_group
from samora.benchmark.settings import SPARSE_METHOD, SPARSE_METHOD_RANKS, SWEEPS, MeasureOptions
from samora.benchmark.summaries import paired_ratios, summary
from samora.methods import get_method

Point = tuple[str, Contender, BenchSettings, int | None, str, str]  # name, contender, settings, value, role, series


def sweep_points(
    sweep: str, values: list[int], method: str, settings: BenchSettings, *, sparse_ranks: int = SPARSE_METHOD_RANKS
) -> list[Point]:
    """The contenders of one sweep over ``values`` of the quantity ``sweep`` names."""
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose from {sorted(SWEEPS)}")
    if not values or any(not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"sweep {sweep!r} needs positive integer values, got {values!r}")
    if sweep == "active_ranks":
        return _active_ranks_points(values, method, settings, sparse_ranks)
    if sweep == "experts":
        return _experts_points(values, method, settings)
    if sweep == "rank":
        return _rank_points(values, method, settings)
    return _shape_points(sweep, values, method, settings)


def _references(settings: BenchSettings) -> list[Point]:
    """The floor and PEFT LoRA at the shared settings: references that do not vary with the sweep."""
    return [
        (FLOOR, Contender(FLOOR, FLOOR), settings, None, FLOOR, FLOOR),
        (PEFT_LORA, Contender(PEFT_LORA, PEFT_LORA), settings, None, PEFT_LORA, PEFT_LORA),
    ]


def _active_ranks_points(values: list[int], method: str, settings: BenchSettings, sparse_ranks: int) -> list[Point]:
    """``method`` at r = ``sparse_ranks`` with top_k = k active, dense and sparse, for every k."""
    fields = _config_fields(method)
    if not {"top_k", "compute"} <= fields:
        raise ValueError(
            f"the active_ranks sweep needs a method with top_k and compute (e.g. "
            f"{SPARSE_METHOD!r}); {method!r} has {sorted(fields)}"
        )
    points = _references(settings)
    for k in values:
        for compute in ("dense", "sparse"):
            overrides = {"r": sparse_ranks, "top_k": k, "compute": compute}
            points.append(
                (
                    f"{method}[k={k},{compute}]",
                    Contender(method, METHOD, method, overrides),
                    settings,
                    k,
                    METHOD,
                    f"{method} {compute} (r={sparse_ranks})",
                )
            )
    return points


def _experts_points(values: list[int], method: str, settings: BenchSettings) -> list[Point]:
    """``method`` with N = n experts for every n, beside the fixed references."""
    fields = _config_fields(method)
    if "num_experts" not in fields:
        raise ValueError(f"the experts sweep needs a method with num_experts; {method!r} has {sorted(fields)}")
    return [
        *_references(settings),
        *[
            (f"{method}[N={n}]", Contender(method, METHOD, method, {"num_experts": n}), settings, n, METHOD, method)
            for n in values
        ],
    ]


def _rank_points(values: list[int], method: str, settings: BenchSettings) -> list[Point]:
    """PEFT LoRA and ``method`` at every rank r, beside the floor (which has no rank)."""
    points = [(FLOOR, Contender(FLOOR, FLOOR), settings, None, FLOOR, FLOOR)]
    for r in values:
        reference = Contender(PEFT_LORA, PEFT_LORA, overrides={"r": r})
        points.append((f"{PEFT_LORA}[r={r}]", reference, settings, r, PEFT_LORA, PEFT_LORA))
        points.append((f"{method}[r={r}]", Contender(method, METHOD, method, {"r": r}), settings, r, METHOD, method))
    return points


def _shape_points(sweep: str, values: list[int], method: str, settings: BenchSettings) -> list[Point]:
    """The floor, PEFT LoRA and ``method`` at every value of a shared setting (batch or seq_len)."""
    floor, reference = Contender(FLOOR, FLOOR), Contender(PEFT_LORA, PEFT_LORA)
    points = []
    for value in values:
        shaped = dataclasses.replace(settings, **{sweep: value})
        for role, contender in ((FLOOR, floor), (PEFT_LORA, reference), (METHOD, Contender(method, METHOD, method))):
            points.append((f"{contender.name}[{sweep}={value}]", contender, shaped, value, role, contender.name))
    return points


def _config_fields(method: str) -> set[str]:
    return {f.name for f in dataclasses.fields(get_method(method)[0])}


def sparse_crossover(rows: list[dict]) -> dict:
    """Sparse / dense step-time ratios per k (paired medians) and the largest k/r below which sparse wins."""
    by_k: dict[int, dict[str, dict]] = {}
    for row in rows:
        if row["role"] == METHOD:
            by_k.setdefault(row["value"], {})[row["config"]["compute"]] = row
    ratios = []
    for k, pair in sorted(by_k.items()):
        ratio = summary(paired_ratios(pair["sparse"]["step_s"], pair["dense"]["step_s"]))
        ratios.append({"top_k": k, "share": k / pair["dense"]["config"]["r"], "sparse_over_dense": ratio})
    faster = [p["share"] for p in ratios if p["sparse_over_dense"]["median"] < 1]
    slower = [p["share"] for p in ratios if p["sparse_over_dense"]["median"] >= 1]
    return {
        "ratios": ratios,
        "sparse_faster_up_to_share": max((s for s in faster if not slower or s < min(slower)), default=None),
        "dense_faster_from_share": min(slower, default=None),
    }


def run_sweep(
    sweep: str,
    values: list[int],
    method: str,
    settings: BenchSettings,
    base,
    options: MeasureOptions,
    log: Callable[[str], None],
    *,
    sparse_ranks: int = SPARSE_METHOD_RANKS,
) -> dict:
    """Measure one sweep; each point gets its ratio to PEFT LoRA and its adapter share of the step."""
    points = sweep_points(sweep, values, method, settings, sparse_ranks=sparse_ranks)
    entries: Entries = {name: (contender, shaped) for name, contender, shaped, *_ in points}
    log(f"sweep {sweep}: {method} at {SWEEPS[sweep]} in {values}")
    measured = measure_group(entries, base, options, generation=False, log=log)
    rows = [
        {"name": name, "value": value, "role": role, "series": series, **measured[name]}
        for name, _, _, value, role, series in points
    ]

    def partner(role: str, value):
        return next((r for r in rows if r["role"] == role and r["value"] in (value, None)), None)

    for row in rows:
        floor, reference = partner(FLOOR, row["value"]), partner(PEFT_LORA, row["value"])
        if row["role"] != FLOOR and floor is not None:
            row["adapter_share_of_step"] = 1 - floor["step"]["median"] / row["step"]["median"]
        if row["role"] != PEFT_LORA and reference is not None:
            row["step_ratio_to_peft_lora"] = summary(paired_ratios(row["step_s"], reference["step_s"]))
    result = {"parameter": SWEEPS[sweep], "method": method, "values": values, "points": rows}
    if sweep == "active_ranks":
        result["crossover"] = sparse_crossover(rows)
    return result
