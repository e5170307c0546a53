"""``samora bench``: the command line of the benchmark harness.

One command measures every registered method against PEFT's LoRA and the frozen-base floor on the
same model and inputs, optionally runs the scaling sweeps, checks the targets, and writes
``bench.json``, ``bench.md``, ``comparison.png`` and ``scaling.png`` to ``--output``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from samora.benchmark.settings import (
    CLOCK_NAMES,
    DEFAULT_VALUES,
    DTYPE_NAMES,
    SPARSE_METHOD,
    SPARSE_METHOD_RANKS,
    SWEEPS,
    BenchSettings,
    MeasureOptions,
)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_bench_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``samora bench`` options to ``parser`` (a sub-command parser or a script's own)."""
    _add_what_to_run(parser.add_argument_group("what to run"))
    _add_sweeps(parser.add_argument_group("scaling sweeps"))
    _add_shared_settings(parser.add_argument_group("shared settings"))
    _add_timing(parser.add_argument_group("timing"))
    _add_memory_and_generation(parser.add_argument_group("memory and generation"))
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results folder (default: benchmarks/results/<model>-<device>-<dtype>)",
    )
    return parser


def _add_what_to_run(group) -> None:
    group.add_argument(
        "--model",
        default="smollm2",
        help="'smollm2' (SmolLM2-135M-Instruct, offline), 'tiny' (a 2-layer random Llama, "
        "for smoke runs) or a local Hugging Face causal-LM folder (default: smollm2)",
    )
    group.add_argument(
        "--methods",
        type=_name_list,
        default=None,
        help="comma-separated registered methods (default: all of samora.METHODS)",
    )
    group.add_argument("--no-comparison", action="store_true", help="only run the sweeps")
    group.add_argument("--no-shape-check", action="store_true", help="skip the per-expert activation check")


def _add_sweeps(group) -> None:
    group.add_argument(
        "--sweep",
        action="append",
        choices=[*SWEEPS, "all"],
        default=[],
        help="also run a scaling sweep (repeatable): " + ", ".join(SWEEPS),
    )
    group.add_argument(
        "--sweep-method",
        default="samora",
        help=f"the method the sweeps scale (default: samora; active_ranks always uses {SPARSE_METHOD})",
    )
    group.add_argument(
        "--active-ranks-r",
        type=int,
        default=SPARSE_METHOD_RANKS,
        help=f"r of {SPARSE_METHOD} in the active_ranks sweep (default: {SPARSE_METHOD_RANKS})",
    )
    for name, values in DEFAULT_VALUES.items():
        group.add_argument(
            f"--{name.replace('_', '-')}-values",
            type=_int_list,
            default=values,
            help=f"values of the {name} sweep (default: {','.join(map(str, values))})",
        )
    group.add_argument("--sweep-rounds", type=int, default=3, help="interleaved rounds in each sweep")
    group.add_argument("--sweep-memory-repeats", type=int, default=1, help="memory repeats in each sweep")


def _add_shared_settings(group) -> None:
    defaults = BenchSettings()
    group.add_argument("--batch", type=int, default=defaults.batch)
    group.add_argument("--seq-len", type=int, default=defaults.seq_len)
    group.add_argument("--r", type=int, default=defaults.r, help="rank of every adapter and of PEFT LoRA")
    group.add_argument("--targets", type=_name_list, default=defaults.targets, help="comma-separated target modules")
    group.add_argument("--dropout", type=float, default=defaults.dropout, help="adapter dropout, PEFT LoRA's too")
    group.add_argument("--num-tasks", type=int, default=defaults.num_tasks)
    group.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    group.add_argument(
        "--dtype",
        choices=sorted(DTYPE_NAMES),
        default=None,
        help="base model dtype (default: float32 on CPU, bfloat16 on CUDA)",
    )
    group.add_argument("--seed", type=int, default=defaults.seed)


def _add_timing(group) -> None:
    options = MeasureOptions()
    group.add_argument("--rounds", type=int, default=options.rounds, help="interleaved timed rounds")
    group.add_argument("--warmup", type=int, default=options.warmup, help="untimed steps per contender first")
    group.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    group.add_argument(
        "--clock",
        choices=sorted(CLOCK_NAMES),
        default=options.clock,
        help="wall: elapsed time (default); cpu: CPU time of the calling thread, which other "
        "processes on a shared machine do not inflate (needs --threads 1)",
    )
    group.add_argument(
        "--max-load",
        type=float,
        default=None,
        help="wait until the 1-minute load average is below this before measuring",
    )
    group.add_argument("--max-wait", type=float, default=1500.0, help="seconds to wait for --max-load at most")


def _add_memory_and_generation(group) -> None:
    options = MeasureOptions()
    group.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    group.add_argument("--memory-steps", type=int, default=options.memory_steps)
    group.add_argument("--memory-repeats", type=int, default=3, help="fresh processes per contender (medians)")
    group.add_argument("--generation-tokens", type=int, default=options.generation_tokens, help="0 skips generation")
    group.add_argument("--generation-prompt", type=int, default=options.generation_prompt)
    group.add_argument("--generation-batch", type=int, default=options.generation_batch)


def machine_description(settings: BenchSettings) -> dict:
    import torch

    description = {
        "device": settings.device,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "logical cpus": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            description["cpu"] = next(
                line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")
            )
        with open("/proc/meminfo") as meminfo:
            description["memory"] = f"{int(meminfo.readline().split()[1]) / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        description["cpu"] = platform.processor()
    if settings.device.startswith("cuda"):
        description["gpu"] = torch.cuda.get_device_name(torch.device(settings.device))
    for package in ("transformers", "peft"):
        try:
            description[package] = __import__(package).__version__
        except ImportError:
            description[package] = "not installed"
    return description


def wait_for_quiet(max_load: float, max_wait: float, log) -> dict:
    """Poll the 1-minute load average every 60 s until it is below ``max_load`` or time runs out."""
    start, seen = time.monotonic(), []
    while True:
        seen.append(round(os.getloadavg()[0], 2))
        if seen[-1] < max_load or time.monotonic() - start >= max_wait:
            break
        log(f"1-minute load {seen[-1]} >= {max_load}; waiting")
        time.sleep(min(60.0, max(1.0, max_wait - (time.monotonic() - start))))
    return {
        "limit": max_load,
        "quiet": seen[-1] < max_load,
        "polled": seen,
        "waited_s": round(time.monotonic() - start),
    }


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was given but torch sees no CUDA device; use --device cpu")
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    return BenchSettings(
        model=args.model,
        device=device,
        dtype=dtype,
        r=args.r,
        targets=args.targets,
        dropout=args.dropout,
        num_tasks=args.num_tasks,
        batch=args.batch,
        seq_len=args.seq_len,
        seed=args.seed,
    )


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed ``args`` describe; write the results; 0 on success."""
    import torch

    from samora.benchmark.contenders import default_contenders, load_bench_model
    from samora.benchmark.measure import compare_to_references, measure_group
    from samora.benchmark.report import write_bench_results
    from samora.benchmark.summaries import check_targets

    log = functools.partial(print, file=sys.stderr, flush=True)
    settings = settings_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    options = options_from_args(args)
    sweeps = list(SWEEPS) if "all" in args.sweep else list(dict.fromkeys(args.sweep))
    if args.no_comparison and not sweeps:
        raise ValueError("--no-comparison leaves nothing to run: add --sweep")
    contenders = default_contenders(args.methods)  # validates the method names before any waiting
    run = run_description(args, options)
    if args.max_load is not None:
        run["wait for load"] = wait_for_quiet(args.max_load, args.max_wait, log)
    run["load average before (1, 5, 15 min)"] = _load_average()
    base = load_bench_model(settings)
    results = {
        "machine": machine_description(settings),
        "run": run,
        "settings": dataclasses.asdict(settings),
        "comparison": {},
        "sweeps": {},
    }
    if not args.no_comparison:
        entries = {c.name: (c, settings) for c in contenders}
        results["comparison"] = measure_group(entries, base, options, generation=True, log=log)
        compare_to_references(results["comparison"])
        run["load average after comparison"] = _load_average()
    results["sweeps"] = _run_sweeps(sweeps, args, settings, base, options, run, log)
    run["finished"] = _now()
    results["targets"] = check_targets(results["comparison"], results["sweeps"])
    output = (
        args.output or Path("benchmarks/results") / f"{Path(settings.model).name}-{settings.device}-{settings.dtype}"
    )
    for path in write_bench_results(results, output):
        log(f"wrote {path}")
    return 0


def options_from_args(args: argparse.Namespace) -> MeasureOptions:
    return MeasureOptions(
        rounds=args.rounds,
        warmup=args.warmup,
        memory=not args.no_memory,
        memory_steps=args.memory_steps,
        memory_repeats=args.memory_repeats,
        generation_tokens=args.generation_tokens,
        generation_prompt=args.generation_prompt,
        generation_batch=args.generation_batch,
        check_materialisation=not args.no_shape_check,
        threads=args.threads,
        clock=args.clock,
    )


def run_description(args: argparse.Namespace, options: MeasureOptions) -> dict:
    """When and how this run measures, for the results file (load averages are added as it goes)."""
    return {
        "started": _now(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "clock": options.clock,
        "rounds": options.rounds,
        "warmup": options.warmup,
        "memory steps": options.memory_steps,
        "memory repeats": options.memory_repeats,
        "sweep rounds": args.sweep_rounds,
        "sweep memory repeats": args.sweep_memory_repeats,
        "generation": f"batch {options.generation_batch}, prompt {options.generation_prompt}, "
        f"{options.generation_tokens} new tokens",
    }


def _run_sweeps(sweeps: list[str], args, settings: BenchSettings, base, options: MeasureOptions, run: dict, log):
    """Each requested sweep, with the sweep's own rounds and memory repeats and no shape check."""
    from samora.benchmark.sweeps import run_sweep

    sweep_options = dataclasses.replace(
        options, rounds=args.sweep_rounds, memory_repeats=args.sweep_memory_repeats, check_materialisation=False
    )
    measured = {}
    for sweep in sweeps:
        values = getattr(args, f"{sweep}_values")
        method = SPARSE_METHOD if sweep == "active_ranks" else args.sweep_method
        measured[sweep] = run_sweep(
            sweep, values, method, settings, base, sweep_options, log, sparse_ranks=args.active_ranks_r
        )
        run[f"load average after {sweep} sweep"] = _load_average()
    return measured


def _load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    parser = add_bench_arguments(argparse.ArgumentParser(prog="samora bench", description=__doc__))
    return run_bench(parser.parse_args(argv))
