"""Peak memory of one contender's training steps, each measurement in a fresh process.

On CPU there is no allocator high-water mark, and a process that has already run other models
keeps freed memory mapped. So every measurement runs in its own subprocess
(:data:`PROBE`, run with ``python -c``) that loads the base model, builds one contender, reads every
weight once (loaders may memory-map weights, which become resident only when touched) and runs a
few training steps. Just before the first step it resets the kernel's peak resident size of the
process (``/proc/self/clear_refs``), so import and loading transients do not count. It reports:

- ``peak_mb``: the peak resident set size during the training steps (``VmHWM``): base model,
  adapter, optimizer state, activations, allocator slack and the Python/torch runtime: the memory
  a user needs. It varies by a few percent from process to process (allocator behaviour), hence
  the repeats.
- ``before_steps_mb``: the resident size before the first step; ``step_mb = peak_mb - before_steps_mb``.
- ``tensor_peak_mb``: one more step under ``torch.profiler`` (``profile_memory``): the peak of the
  tensor bytes allocated during the step above those alive before it (activations saved for the
  backward, gradients, optimizer updates). Deterministic: the CPU analogue of CUDA's
  ``max_memory_allocated() - memory_allocated()``.

Where the peak cannot be reset (not Linux), ``peak_mb`` is the lifetime peak (``ru_maxrss``) and
``measure`` says so. On CUDA the process reports ``torch.cuda.max_memory_allocated`` as ``peak_mb``
and the step's share of it as ``tensor_peak_mb``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

MEBIBYTE = 2**20
# The fresh process's program: it imports this module by name (never runs it as ``__main__``), so no
# module is loaded twice; the request is its one argument, the figures its last line of output.
PROBE = (
    "import json, sys; from samora.benchmark.memory import measure_in_this_process; "
    "print(json.dumps(measure_in_this_process(json.loads(sys.argv[1]))))"
)


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak resident size to its current size (Linux >= 4.0); False if unable."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def lifetime_peak_rss_bytes() -> int:
    """Peak resident set size since the process started (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def measure_in_this_process(request: dict) -> dict:
    """Build the contender of ``request`` and run its training steps; return the memory figures."""
    import torch

    from samora.benchmark.contenders import Contender, load_bench_model, settings_from_dict
    from samora.benchmark.timing import TrainingStep

    settings = settings_from_dict(request["settings"])
    contender = Contender(**request["contender"])
    if request.get("threads"):
        torch.set_num_threads(request["threads"])
    step = TrainingStep(contender.build(load_bench_model(settings), settings), contender, settings)
    with torch.no_grad():  # read every weight once, so that memory-mapped weights are resident already
        for tensor in [*step.model.parameters(), *step.model.buffers()]:
            tensor.sum()
    on_cuda = settings.device.startswith("cuda")
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before, measure = torch.cuda.memory_allocated(), "cuda_max_memory_allocated"
    else:
        before = _status_bytes("VmRSS") or lifetime_peak_rss_bytes()
        measure = "peak_rss_during_steps" if reset_peak_rss() else "lifetime_peak_rss"
    for _ in range(request["steps"]):
        step.run()
    if on_cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        tensor_peak = peak - before
    else:
        peak = (_status_bytes("VmHWM") if measure == "peak_rss_during_steps" else None) or lifetime_peak_rss_bytes()
        tensor_peak = profiled_tensor_peak_bytes(step.run)
    return {
        "peak_mb": peak / MEBIBYTE,
        "before_steps_mb": before / MEBIBYTE,
        "step_mb": (peak - before) / MEBIBYTE,
        "tensor_peak_mb": tensor_peak / MEBIBYTE,
        "measure": measure,
    }


def profiled_tensor_peak_bytes(step) -> int:
    """Run ``step`` under the CPU memory profiler; the peak of the bytes it allocated and still held."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    allocations = [e for e in profiler.profiler.kineto_results.events() if e.name() == "[memory]"]
    held = peak = 0
    for event in sorted(allocations, key=lambda e: e.start_ns()):
        held += event.nbytes()  # negative for a free
        peak = max(peak, held)
    return peak


def measure_peak_memory(contender, settings, *, steps: int = 2, threads: int | None = None) -> dict:
    """Run :func:`measure_in_this_process` in a fresh Python process and return its figures."""
    if steps < 1:
        raise ValueError(f"memory steps must be >= 1, got {steps}")
    request = {
        "contender": dataclasses.asdict(contender),
        "settings": dataclasses.asdict(settings),
        "steps": steps,
        "threads": threads,
    }
    source_root = str(Path(__file__).resolve().parents[2])  # the folder holding the samora package
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(request)], capture_output=True, text=True, env=env
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory measurement of {contender.name!r} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
