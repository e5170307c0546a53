"""Timed work: one training step, one generation, and interleaving them across contenders.

Timings on a shared machine drift (other processes, thermal state, allocator warm-up), so
:func:`interleave` runs every contender once per *round*, rotating the order each round, and keeps
every round's time: the ratio of two contenders within one round compares measurements taken
seconds apart, which survives drift far better than comparing two separate runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from samora.benchmark.contenders import FLOOR, BenchSettings, Contender
from samora.inject import adapter_or_none

CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}  # the clocks of CLOCK_NAMES


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def clock_for(name: str, device: str) -> Callable[[], float]:
    """``wall``: elapsed time. ``cpu``: CPU time of the calling thread, which time-slicing by other
    processes on a shared machine does not inflate. With one torch thread every operation, the
    backward pass included, runs on the calling thread, so ``cpu`` needs ``torch.get_num_threads() == 1``.
    """
    if name not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {name!r}")
    if name == "cpu" and device.startswith("cuda"):
        raise ValueError("--clock cpu measures CPU work only; on CUDA use --clock wall")
    if name == "cpu" and torch.get_num_threads() != 1:
        raise ValueError(
            f"--clock cpu times the calling thread only: add --threads 1 "
            f"(torch uses {torch.get_num_threads()} threads)"
        )
    return CLOCKS[name]


class TrainingStep:
    """forward + backward + optimizer step (AdamW over the trainable parameters), timed.

    The floor has no trainable parameters: its step is forward + backward only. A samora adapter's
    once-per-step hook (e.g. SMoRA's load-balancing update) is part of the step.
    """

    def __init__(
        self,
        model: nn.Module,
        contender: Contender,
        settings: BenchSettings,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.model = model.train()
        self.device = settings.device
        self.clock = clock
        inputs = settings.batch_inputs(model.config.vocab_size)
        if not contender.uses_task:
            inputs.pop("task_ids")
        self.inputs = inputs
        trainable = [p for p in model.parameters() if p.requires_grad]
        if contender.kind != FLOOR and not trainable:
            raise RuntimeError(f"contender {contender.name!r} has no trainable parameters")
        self.optimizer = torch.optim.AdamW(trainable, lr=1e-4) if trainable else None
        self.adapter = adapter_or_none(model)

    def run(self) -> None:
        self.model(**self.inputs).loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        if self.adapter is not None:
            self.adapter.after_optimizer_step()

    def __call__(self) -> float:
        """Seconds for one step."""
        synchronize(self.device)
        start = self.clock()
        self.run()
        synchronize(self.device)
        return self.clock() - start


class Generation:
    """Greedy generation of exactly ``new_tokens`` tokens with the KV cache, timed per new token."""

    def __init__(
        self,
        model: nn.Module,
        contender: Contender,
        settings: BenchSettings,
        *,
        batch: int,
        prompt_len: int,
        new_tokens: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.model = model.eval()
        self.device = settings.device
        self.clock = clock
        self.new_tokens = new_tokens
        generator = torch.Generator().manual_seed(settings.seed + 1)
        vocab = model.config.vocab_size
        prompt = torch.randint(3, vocab, (batch, prompt_len), generator=generator).to(settings.device)
        self.kwargs = {
            "input_ids": prompt,
            "attention_mask": torch.ones_like(prompt),
            "max_new_tokens": new_tokens,
            "min_new_tokens": new_tokens,
            "do_sample": False,
            "pad_token_id": model.config.pad_token_id or 0,
        }
        if contender.uses_task:
            self.kwargs["task_ids"] = torch.arange(batch, device=settings.device) % settings.num_tasks

    def __call__(self) -> float:
        """Seconds per generated token (prefill of the prompt included, spread over the tokens)."""
        synchronize(self.device)
        start = self.clock()
        with torch.no_grad():
            output = self.model.generate(**self.kwargs)
        synchronize(self.device)
        elapsed = self.clock() - start
        generated = output.shape[1] - self.kwargs["input_ids"].shape[1]
        if generated != self.new_tokens:
            raise RuntimeError(f"generate produced {generated} tokens, expected {self.new_tokens}")
        return elapsed / generated


def interleave(
    runs: dict[str, Callable[[], float]],
    *,
    rounds: int,
    warmup: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Call every run ``warmup`` times (untimed), then once per round in a rotating order.

    Returns name -> the ``rounds`` timings, in round order (so index k of two contenders comes from
    the same round).
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be >= 1 and warmup >= 0, got rounds={rounds}, warmup={warmup}")
    names = list(runs)
    for name in names:
        for _ in range(warmup):
            runs[name]()
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            timings[name].append(runs[name]())
        if progress:
            summary = ", ".join(f"{n} {timings[n][-1]:.3g}s" for n in names)
            progress(f"  round {round_index + 1}/{rounds}: {summary}")
    return timings
