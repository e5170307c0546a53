"""Measure a group of contenders together: interleaved step times, then memory, generation, shapes.

The shape check is mechanical: no adapter may build a per-expert activation of size
batch x seq x N x d_out. A mixture of N experts can compute ``sum_i g_i B_i z`` by first stacking
every expert's output, ``(batch, seq, N, d_out)``, and then mixing: N times the memory and traffic
of the layer's output. :class:`TensorShapeRecorder` (a ``TorchDispatchMode``) sees the result of
every aten operation run while it is active, forward and backward alike; :func:`per_expert_activations`
runs one training step under it and returns the shapes that hold such a tensor.

A shape counts as a per-expert activation when it has ``batch * seq * N * d_out`` elements and,
once one dimension equal to N and one equal to d_out are set aside, the rest multiply to
``batch * seq``: ``(b, s, N, d)``, ``(N, b, s, d)`` and ``(b * s, N, d)`` count; the hidden state
``(b, s, N * d)`` of a layer whose width happens to equal N * d_out does not.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from samora.benchmark.contenders import FLOOR, METHOD, PEFT_LORA, BenchSettings, Contender, expert_count
from samora.benchmark.memory import measure_peak_memory
from samora.benchmark.settings import MeasureOptions
from samora.benchmark.summaries import paired_ratios, summary
from samora.benchmark.timing import Generation, TrainingStep, clock_for, interleave
from samora.inject import trainable_parameters

Entries = dict[str, tuple[Contender, BenchSettings]]


def measure_group(
    entries: Entries, base, options: MeasureOptions, *, generation: bool, log: Callable[[str], None]
) -> dict[str, dict]:
    """Build every contender on ``base``, time them interleaved, then measure the rest one by one."""
    results, steps = {}, {}
    for name, (contender, settings) in entries.items():
        clock = clock_for(options.clock, settings.device)
        steps[name] = TrainingStep(contender.build(base, settings), contender, settings, clock=clock)
        results[name] = _describe(contender, settings, steps[name].model)
    log(f"timing training steps of {len(entries)} contenders, {options.rounds} interleaved rounds")
    for name, times in interleave(steps, rounds=options.rounds, warmup=options.warmup, progress=log).items():
        settings = entries[name][1]
        results[name]["step_s"] = times
        results[name]["step"] = summary(times)
        results[name]["tokens_per_s"] = settings.batch * settings.seq_len / results[name]["step"]["median"]
    if options.check_materialisation:
        for name, shapes in _per_expert_shapes(entries, steps).items():
            results[name]["per_expert_activations"] = shapes
    if generation and options.generation_tokens:
        for name, times in _time_generation(entries, steps, options, log).items():
            results[name]["generation_s_per_token"] = times
            results[name]["generation"] = summary(times)
    del steps
    gc.collect()
    if options.memory:
        for name, memory in _measure_memory(entries, options, log).items():
            results[name]["memory"] = memory
    return results


def _describe(contender: Contender, settings: BenchSettings, model) -> dict:
    """What a contender is, before any measurement: its kind, config, shape and trainable parameters."""
    return {
        "kind": contender.kind,
        "method": contender.method,
        "config": contender.describe(settings),
        "batch": settings.batch,
        "seq_len": settings.seq_len,
        "trainable_parameters": trainable_parameters(model).trainable,
    }


def _per_expert_shapes(entries: Entries, steps: dict[str, TrainingStep]) -> dict[str, list[tuple[int, ...]]]:
    """Each method's per-expert activation shapes, from one more (untimed) training step."""
    found = {}
    for name, (contender, settings) in entries.items():
        if contender.kind == METHOD:
            adapter = steps[name].model.samora_adapter
            found[name] = per_expert_activations(
                steps[name].run,
                tokens=settings.batch * settings.seq_len,
                experts=expert_count(adapter.config),
                d_outs=[layer.out_features for layer in adapter.layers.values()],
            )
    return found


def _time_generation(
    entries: Entries, steps: dict[str, TrainingStep], options: MeasureOptions, log: Callable[[str], None]
) -> dict[str, list[float]]:
    """Seconds per generated token of every contender, interleaved round by round."""
    log(f"timing generation ({options.generation_tokens} new tokens), {options.rounds} interleaved rounds")
    runs = {
        name: Generation(
            steps[name].model,
            contender,
            settings,
            batch=options.generation_batch,
            prompt_len=options.generation_prompt,
            new_tokens=options.generation_tokens,
            clock=steps[name].clock,
        )
        for name, (contender, settings) in entries.items()
    }
    return interleave(runs, rounds=options.rounds, warmup=1, progress=log)


def _measure_memory(entries: Entries, options: MeasureOptions, log: Callable[[str], None]) -> dict[str, dict]:
    """Each contender's peak memory: fresh processes, repeat by repeat over all contenders, medians."""
    repeats: dict[str, list[dict]] = {name: [] for name in entries}
    for repeat in range(options.memory_repeats):
        for name, (contender, settings) in entries.items():
            log(
                f"peak memory of {name} (fresh process, {options.memory_steps} steps, "
                f"repeat {repeat + 1}/{options.memory_repeats})"
            )
            repeats[name].append(
                measure_peak_memory(contender, settings, steps=options.memory_steps, threads=options.threads)
            )
    return {name: median_memory(measured) for name, measured in repeats.items()}


def median_memory(measured: list[dict]) -> dict:
    """The median of each memory figure over fresh-process repeats, with every repeat kept."""
    numbers = [key for key, value in measured[0].items() if isinstance(value, float)]
    return {
        **{key: summary([m[key] for m in measured])["median"] for key in numbers},
        "measure": measured[0]["measure"],
        "repeats": measured,
    }


def compare_to_references(results: dict[str, dict], *, reference: str = PEFT_LORA, floor: str = FLOOR) -> None:
    """Add, in place, each contender's paired ratios to ``reference`` and its distance from ``floor``.

    - ``step_ratio_to_peft_lora``: round-by-round step-time ratios (summary);
    - ``adapter_share_of_step``: (step - floor step) / step, medians: the part of the step that the
      adapter (and its optimizer) costs above the frozen model's own forward + backward;
    - ``memory.peak_ratio_to_peft_lora``, ``.step_ratio_to_peft_lora``, ``.tensor_peak_ratio_to_peft_lora``;
    - ``generation_ratio_to_peft_lora``: round-by-round time-per-token ratios (summary).
    """
    ref, base = results[reference], results.get(floor)
    for name, entry in results.items():
        entry["step_ratio_to_peft_lora"] = summary(paired_ratios(entry["step_s"], ref["step_s"]))
        if base is not None and name != floor:
            floor_median = base["step"]["median"]
            entry["adapter_share_of_step"] = 1 - floor_median / entry["step"]["median"]
            entry["step_over_floor"] = summary(paired_ratios(entry["step_s"], base["step_s"]))
        if "memory" in entry and "memory" in ref:
            entry["memory"]["peak_ratio_to_peft_lora"] = entry["memory"]["peak_mb"] / ref["memory"]["peak_mb"]
            entry["memory"]["step_ratio_to_peft_lora"] = entry["memory"]["step_mb"] / ref["memory"]["step_mb"]
            entry["memory"]["tensor_peak_ratio_to_peft_lora"] = (
                entry["memory"]["tensor_peak_mb"] / ref["memory"]["tensor_peak_mb"]
            )
        if "generation_s_per_token" in entry and "generation_s_per_token" in ref:
            entry["generation_ratio_to_peft_lora"] = summary(
                paired_ratios(entry["generation_s_per_token"], ref["generation_s_per_token"])
            )


class TensorShapeRecorder(TorchDispatchMode):
    """Records the shape of every tensor produced by an aten operation while active."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(result):
            if isinstance(leaf, torch.Tensor):
                self.shapes.add(tuple(leaf.shape))
        return result


def is_per_expert_activation(shape: tuple[int, ...], tokens: int, experts: int, d_out: int) -> bool:
    """Whether ``shape`` holds one d_out-sized vector per token and expert (see the module doc)."""
    if experts < 2 or math.prod(shape) != tokens * experts * d_out:
        return False
    rest = list(shape)
    for dim in (experts, d_out):
        if dim not in rest:
            return False
        rest.remove(dim)
    return math.prod(rest) == tokens


def per_expert_activations(
    step: Callable[[], object], *, tokens: int, experts: int, d_outs: Iterable[int]
) -> list[tuple[int, ...]]:
    """Run ``step`` (forward + backward) under a recorder; the shapes that are per-expert activations."""
    with TensorShapeRecorder() as recorder:
        step()
    d_outs = sorted(set(d_outs))
    return sorted(
        shape for shape in recorder.shapes if any(is_per_expert_activation(shape, tokens, experts, d) for d in d_outs)
    )
