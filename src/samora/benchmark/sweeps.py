"""Scaling sweeps: step time and memory as functions of N, r, batch and sequence length.

Each sweep is one interleaved group: every point of the sweep, plus the frozen-base floor and PEFT's
LoRA at the same shape, runs once per round, so the curves share their noise. Points carry a
``role``: ``"method"`` (the swept method), ``"peft_lora"`` or ``"floor"``; a reference whose
``value`` is None does not depend on the swept quantity (e.g. the floor in a rank sweep).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from samora.benchmark.contenders import FLOOR, METHOD, PEFT_LORA, BenchSettings, Contender
from samora.benchmark.runner import Entries, MeasureOptions, measure_group
from samora.benchmark.statistics import paired_ratios, summary
from samora.methods import get_method

SWEEPS = {"experts": "num_experts", "rank": "r", "batch": "batch", "seq_len": "seq_len"}
DEFAULT_VALUES = {"experts": [1, 2, 4, 8, 16], "rank": [4, 8, 16, 32, 64], "batch": [1, 2, 4, 8],
                  "seq_len": [32, 64, 128, 256]}

Point = tuple[str, Contender, BenchSettings, int | None, str]  # name, contender, settings, value, role


def sweep_points(sweep: str, values: list[int], method: str, settings: BenchSettings) -> list[Point]:
    """The contenders of one sweep over ``values`` of the quantity ``sweep`` names."""
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose from {sorted(SWEEPS)}")
    if not values or any(not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"sweep {sweep!r} needs positive integer values, got {values!r}")
    floor, reference = Contender(FLOOR, FLOOR), Contender(PEFT_LORA, PEFT_LORA)
    if sweep == "experts":
        fields = {f.name for f in dataclasses.fields(get_method(method)[0])}
        if "num_experts" not in fields:
            raise ValueError(f"the experts sweep needs a method with num_experts; {method!r} has {sorted(fields)}")
        return [(FLOOR, floor, settings, None, FLOOR), (PEFT_LORA, reference, settings, None, PEFT_LORA),
                *[(f"{method}[N={n}]", Contender(method, METHOD, method, {"num_experts": n}), settings, n, METHOD)
                  for n in values]]
    if sweep == "rank":
        points = [(FLOOR, floor, settings, None, FLOOR)]
        for r in values:
            points.append((f"{PEFT_LORA}[r={r}]", Contender(PEFT_LORA, PEFT_LORA, overrides={"r": r}),
                           settings, r, PEFT_LORA))
            points.append((f"{method}[r={r}]", Contender(method, METHOD, method, {"r": r}), settings, r, METHOD))
        return points
    points = []
    for value in values:
        shaped = dataclasses.replace(settings, **{sweep: value})
        for role, contender in ((FLOOR, floor), (PEFT_LORA, reference), (METHOD, Contender(method, METHOD, method))):
            points.append((f"{contender.name}[{sweep}={value}]", contender, shaped, value, role))
    return points


def run_sweep(sweep: str, values: list[int], method: str, settings: BenchSettings, base,
              options: MeasureOptions, log: Callable[[str], None]) -> dict:
    """Measure one sweep; each point gets its ratio to PEFT LoRA and its adapter share of the step."""
    points = sweep_points(sweep, values, method, settings)
    entries: Entries = {name: (contender, shaped) for name, contender, shaped, _, _ in points}
    log(f"sweep {sweep}: {method} at {SWEEPS[sweep]} in {values}")
    measured = measure_group(entries, base, options, generation=False, log=log)
    rows = [{"name": name, "value": value, "role": role, **measured[name]} for name, _, _, value, role in points]

    def partner(role: str, value):
        return next((r for r in rows if r["role"] == role and r["value"] in (value, None)), None)

    for row in rows:
        floor, reference = partner(FLOOR, row["value"]), partner(PEFT_LORA, row["value"])
        if row["role"] != FLOOR and floor is not None:
            row["adapter_share_of_step"] = 1 - floor["step"]["median"] / row["step"]["median"]
        if row["role"] != PEFT_LORA and reference is not None:
            row["step_ratio_to_peft_lora"] = summary(paired_ratios(row["step_s"], reference["step_s"]))
    return {"parameter": SWEEPS[sweep], "method": method, "values": values, "points": rows}
