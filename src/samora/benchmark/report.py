"""Write a benchmark's results: ``bench.json``, ``bench.md`` and two figures (matplotlib, Agg)."""

from __future__ import annotations

import json
from pathlib import Path

from samora.analysis.plots import new_figure
from samora.benchmark.contenders import FLOOR, METHOD, PEFT_LORA

ROLE_STYLE = {METHOD: ("tab:blue", "o"), PEFT_LORA: ("tab:orange", "s"), FLOOR: ("tab:gray", "^")}  # color, marker


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _median_and_range(stats: dict | None, digits: int = 3) -> str:
    """``median [min-max]`` of a summary."""
    if not stats:
        return "-"
    return f"{_num(stats['median'], digits)} [{_num(stats['min'], digits)}-{_num(stats['max'], digits)}]"


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def comparison_table(comparison: dict) -> list[str]:
    lines = [
        "| contender | trainable params | step s | step / PEFT LoRA | tokens/s | adapter share of step "
        "| peak RSS MB | peak / PEFT LoRA | step tensor peak MB | tensor peak / PEFT LoRA "
        "| generation ms/token | generation / PEFT LoRA | per-expert tensors |",
        "|" + "---|" * 13,
    ]
    for name, e in comparison.items():
        memory = e.get("memory", {})
        generation = e.get("generation")
        gen_ms = {k: v * 1000 if k != "n" else v for k, v in generation.items()} if generation else None
        shapes = e.get("per_expert_activations")
        lines.append(
            f"| {name} | {e['trainable_parameters']:,} | {_median_and_range(e['step'])} "
            f"| {_median_and_range(e.get('step_ratio_to_peft_lora'))} | {e['tokens_per_s']:.0f} "
            f"| {_percent(e.get('adapter_share_of_step'))} | {_num(memory.get('peak_mb'), 5)} "
            f"| {_num(memory.get('peak_ratio_to_peft_lora'))} | {_num(memory.get('tensor_peak_mb'), 5)} "
            f"| {_num(memory.get('tensor_peak_ratio_to_peft_lora'))} | {_median_and_range(gen_ms)} "
            f"| {_median_and_range(e.get('generation_ratio_to_peft_lora'))} "
            f"| {'-' if shapes is None else ('none' if not shapes else ', '.join(map(str, shapes)))} |"
        )
    return lines


def crossover_table(crossover: dict) -> list[str]:
    lines = [
        "Sparse / dense step time (paired medians [min-max] over rounds): sparse is faster up to "
        f"k/r = {_num(crossover['sparse_faster_up_to_share'])}, dense from k/r = "
        f"{_num(crossover['dense_faster_from_share'])}.",
        "",
        "| k | k/r | sparse / dense |",
        "|---|---|---|",
    ]
    lines += [
        f"| {p['top_k']} | {_num(p['share'])} | {_median_and_range(p['sparse_over_dense'])} |"
        for p in crossover["ratios"]
    ]
    return lines + [""]


def sweep_table(name: str, sweep: dict) -> list[str]:
    lines = [
        f"### {name}: {sweep['method']} over {sweep['parameter']} = {sweep['values']}",
        "",
        "| point | step s | step / PEFT LoRA | adapter share of step | peak RSS MB | step tensor peak MB |",
        "|---|---|---|---|---|---|",
    ]
    for p in sweep["points"]:
        memory = p.get("memory", {})
        lines.append(
            f"| {p['name']} | {_median_and_range(p['step'])} | {_median_and_range(p.get('step_ratio_to_peft_lora'))} "
            f"| {_percent(p.get('adapter_share_of_step'))} | {_num(memory.get('peak_mb'), 5)} "
            f"| {_num(memory.get('tensor_peak_mb'), 5)} |"
        )
    lines.append("")
    return lines + (crossover_table(sweep["crossover"]) if "crossover" in sweep else [])


def markdown(results: dict) -> str:
    machine, settings, run = results["machine"], results["settings"], results["run"]
    lines = [f"# samora benchmark: {settings['model']} on {machine['device']}", "", "## Machine and run", ""]
    lines += [f"- **{key}**: {value}" for key, value in machine.items()]
    lines += [f"- **{key}**: {value}" for key, value in run.items()]
    lines += ["", "## Settings (identical for every contender, PEFT LoRA included)", ""]
    lines += [f"- **{key}**: {value}" for key, value in settings.items()]
    lines += [
        "",
        "## How to read this",
        "",
        "- *step*: one training step (forward + backward + AdamW step + zero_grad) on the same "
        "inputs; the floor is the frozen base's forward + backward down to the input embeddings.",
        "- Contenders run interleaved, one step each per round in a rotating order; ratios are "
        "medians of round-by-round ratios, shown as `median [min-max]` over the rounds.",
        "- *adapter share of step*: (step - floor step) / step, medians.",
        "- *peak RSS MB*: peak resident memory during the training steps of a fresh process that "
        "loaded the model and built only this contender (median over fresh processes); *step tensor "
        "peak MB*: the most tensor memory one step allocated on top of what was alive before it "
        "(torch.profiler, deterministic). On CUDA: `torch.cuda.max_memory_allocated` and its step share.",
        "- *generation*: greedy generation with the KV cache, adapters unmerged, time per new token "
        "(prefill included).",
        "- *per-expert tensors*: shapes of any (batch, seq, N, d_out)-sized tensor created during a "
        "training step (recorded with a TorchDispatchMode); `none` means none was created.",
        "",
    ]
    if results.get("targets"):
        lines += ["## Targets", "", "| target | measured | limit | met |", "|---|---|---|---|"]
        for t in results["targets"]:
            met = "n/a (not measured)" if t["met"] is None else ("yes" if t["met"] else "**no**")
            lines.append(f"| {t['target']} | {_num(t['measured'])} | {_num(t['limit'])} | {met} |")
        lines.append("")
    if results.get("comparison"):
        lines += ["## Training step, memory and generation", ""] + comparison_table(results["comparison"]) + [""]
    if results.get("sweeps"):
        lines += ["## Scaling sweeps", ""]
        for name, sweep in results["sweeps"].items():
            lines += sweep_table(name, sweep)
    return "\n".join(lines) + "\n"


def plot_comparison(comparison: dict, path: Path) -> None:
    panels = [
        ("step_ratio_to_peft_lora", "training step / PEFT LoRA"),
        ("generation_ratio_to_peft_lora", "generation time per token / PEFT LoRA"),
        ("memory", "peak RSS (bar) and step tensor peak (dot) / PEFT LoRA"),
    ]
    names = list(comparison)
    figure = new_figure(figsize=(5 * len(panels), 0.45 * len(names) + 1.5))
    axes = figure.subplots(1, len(panels), sharey=True)
    for axis, (key, title) in zip(axes, panels):
        for row, name in enumerate(names):
            value = comparison[name].get(key)
            if key == "memory":
                if value and "peak_ratio_to_peft_lora" in value:
                    axis.barh(row, value["peak_ratio_to_peft_lora"], color="tab:blue")
                    axis.plot(value["tensor_peak_ratio_to_peft_lora"], row, "o", color="black")
            elif value:
                error = [[value["median"] - value["min"]], [value["max"] - value["median"]]]
                axis.barh(row, value["median"], xerr=error, color="tab:blue", capsize=3)
        axis.axvline(1.0, color="black", linewidth=0.8)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("ratio (median, whiskers: min-max over rounds)")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def _series(sweep: dict) -> dict[str, list[dict]]:
    """Points grouped into the figure's lines, in order of appearance (``series`` names the line)."""
    lines: dict[str, list[dict]] = {}
    for point in sweep["points"]:
        lines.setdefault(point.get("series", point["role"]), []).append(point)
    return lines


def plot_scaling(sweeps: dict, path: Path) -> None:
    rows = [
        ("step", "step time (s)"),
        ("memory", "step tensor peak (MB)"),
        ("adapter_share_of_step", "adapter share of step (%)"),
    ]
    if not any("memory" in p for sweep in sweeps.values() for p in sweep["points"]):
        rows.pop(1)
    figure = new_figure(figsize=(4.2 * len(sweeps), 3 * len(rows)))
    axes = figure.subplots(len(rows), len(sweeps), squeeze=False)
    method_colors = iter(["tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown"])
    colors: dict[str, str] = {}
    for column, (name, sweep) in enumerate(sweeps.items()):
        for row, (key, label) in enumerate(rows):
            axis = axes[row][column]
            for series, points in _series(sweep).items():
                role = points[0]["role"]
                if series not in colors:
                    colors[series] = ROLE_STYLE[role][0] if role != METHOD else next(method_colors, "tab:olive")
                style = {"color": colors[series], "marker": ROLE_STYLE[role][1], "label": series}
                if len(points) == 1 and points[0]["value"] is None:  # a reference that does not vary
                    xs, points = sweep["values"], points * len(sweep["values"])
                else:
                    xs = [p["value"] for p in points]
                if key == "step":
                    medians = [p["step"]["median"] for p in points]
                    errors = [
                        [p["step"]["median"] - p["step"]["min"] for p in points],
                        [p["step"]["max"] - p["step"]["median"] for p in points],
                    ]
                    axis.errorbar(xs, medians, yerr=errors, capsize=3, **style)
                elif key == "memory" and all("memory" in p for p in points):
                    axis.plot(xs, [p["memory"]["tensor_peak_mb"] for p in points], **style)
                elif key == "adapter_share_of_step" and role != FLOOR:
                    axis.plot(xs, [100 * p[key] for p in points], **style)
            axis.set_xscale("log", base=2)
            axis.set_xlabel(sweep["parameter"])
            axis.set_ylabel(label)
            if row == 0:
                axis.set_title(f"{name}: {sweep['method']}")
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=7)
            axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def write_bench_results(results: dict, folder: Path) -> list[Path]:
    """Write bench.json, bench.md and the figures the results allow; return the written paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "bench.json", folder / "bench.md"]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    written[1].write_text(markdown(results))
    if results.get("comparison"):
        written.append(folder / "comparison.png")
        plot_comparison(results["comparison"], written[-1])
    if results.get("sweeps"):
        written.append(folder / "scaling.png")
        plot_scaling(results["sweeps"], written[-1])
    return written
