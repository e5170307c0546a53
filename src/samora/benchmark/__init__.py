"""Performance benchmark harness: samora's methods against PEFT's LoRA and the frozen-base floor.

Measured on one base model and one set of inputs, with the contenders interleaved in one run:
training step time (forward + backward + optimizer), tokens per second, peak memory (a fresh
process per contender), generation time per token, and whether any method builds a per-expert
activation of size batch x seq x N x d_out. Ratios to PEFT LoRA are paired round by round.

Entry points: :func:`add_bench_arguments` and :func:`run_bench` (``samora bench``), or
``python benchmarks/bench.py``. Modules: ``command`` (the command line), ``settings`` (the shared
set-up and options, torch-free), ``contenders`` (what is built), ``timing`` (interleaved timed work),
``memory`` (peak-memory subprocesses), ``measure`` (a measured group and the per-expert shape check),
``sweeps`` (scaling sweeps), ``summaries`` (summaries, paired ratios, targets), ``report`` (the files).
"""

from samora.benchmark.command import add_bench_arguments, main, run_bench

__all__ = ["add_bench_arguments", "main", "run_bench"]
