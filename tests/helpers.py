"""Plain helpers shared by the tests: tiny random transformers models (seconds, no downloads), a tiny
tokenised multi-task dataset and its collator, and the launcher of the subprocess tests.

Tests import them with ``from tests.helpers import ...``; pytest fixtures live in the conftest.py files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.overrides import TorchFunctionMode
from transformers import LlamaConfig, LlamaForCausalLM

from samora.routing import RoutingState

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src"
SHARED_GLUE = ROOT.parent / "shared" / "data" / "glue"  # the GLUE files of the shared set-up, when present

VOCAB = 64
# The layer shapes of every tiny Llama and Qwen3 in the tests: 2 layers, hidden size 32, 4 heads (2 for k, v).
TINY_SHAPES = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)


def contract_precision() -> tuple[torch.device, torch.dtype]:
    """Where the contract suite runs: ``SAMORA_TEST_DEVICE`` (default cpu) and ``SAMORA_TEST_DTYPE``
    (default float32), e.g. ``SAMORA_TEST_DEVICE=cuda SAMORA_TEST_DTYPE=bfloat16`` (scripts/gpu_check.sh)."""
    device = torch.device(os.environ.get("SAMORA_TEST_DEVICE", "cpu"))
    name = os.environ.get("SAMORA_TEST_DTYPE", "float32")
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"SAMORA_TEST_DTYPE must be float32, bfloat16 or float16, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "SAMORA_TEST_DEVICE=cuda but torch sees no CUDA device (torch.cuda.is_available() is False)"
        )
    return device, getattr(torch, name)


TEST_DEVICE, TEST_DTYPE = contract_precision()


def tiny_llama_config(vocab_size: int, **config) -> LlamaConfig:
    """The config of a tiny Llama (:data:`TINY_SHAPES`) over ``vocab_size`` tokens; ``config`` adds or
    overrides fields (e.g. the special token ids of a real tokenizer)."""
    return LlamaConfig(**{"vocab_size": vocab_size, **TINY_SHAPES, **config})


def tiny_model(arch: str = "llama", seed: int = 0):
    """A 2-layer model of the given architecture with hidden size 32 and a 64-token vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    common = dict(
        vocab_size=VOCAB, **TINY_SHAPES, max_position_embeddings=64, pad_token_id=0, eos_token_id=1, bos_token_id=2
    )
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=8, **common))
    elif arch == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(
                n_embd=32,
                n_layer=2,
                n_head=4,
                vocab_size=VOCAB,
                n_positions=64,
                pad_token_id=0,
                eos_token_id=1,
                bos_token_id=2,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
            )
        )
    else:
        raise ValueError(arch)
    return model.eval()


TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gpt2": ["c_attn", "c_proj"],
}
ARCHS = list(TARGETS)


def random_layer(layer_cls, config, dtype=torch.float64, seed: int = 0, d_in: int = 6, d_out: int = 5):
    """``layer_cls`` on a bare ``nn.Linear(d_in, d_out)`` with every parameter drawn from N(0, 1) (so no
    term is trivially zero, as zero-initialised B's would be), in eval mode: the methods' golden tests."""
    torch.manual_seed(seed)
    layer = layer_cls(torch.nn.Linear(d_in, d_out).to(dtype), config, RoutingState(), adapter_dtype=dtype)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.normal_()
    return layer.eval()


def wider_llama() -> LlamaForCausalLM:
    """A tiny Llama of hidden size 48: a base whose shapes no adapter of :func:`tiny_model` fits."""
    return LlamaForCausalLM(tiny_llama_config(VOCAB, hidden_size=48))


def trained_samora(seed: int = 0, **config):
    """A tiny Llama with a SAMoRA adapter (r = 4, tasks a, b) whose adapter weights are seeded noise."""
    import samora

    model = samora.get_model(tiny_model(), samora.SAMoRAConfig(r=4, tasks=["a", "b"], **config))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator))
    return model


def enable_checkpointing(model, reentrant: bool) -> None:
    """Turn on activation checkpointing with transformers 5's name, or the older one."""
    kwargs = {"use_reentrant": reentrant}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def checkpointing_arguments(reentrant: bool) -> dict:
    """TrainingArguments fields that turn on checkpointing: transformers 5's names, or 4.57's."""
    from transformers import TrainingArguments

    prefix = (
        "activation_checkpointing"
        if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
        else "gradient_checkpointing"
    )
    return {prefix: True, f"{prefix}_kwargs": {"use_reentrant": reentrant}}


class RecordingLlama(LlamaForCausalLM):
    """A stand-in for a samora-adapted model: its forward accepts ``task_ids`` and records them."""

    def forward(self, input_ids=None, attention_mask=None, task_ids=None, **kwargs):
        self.recorded.append(None if task_ids is None else task_ids.tolist())
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def data_tiny_model(tokenizer, *, routed_tasks=None, seed=0, recording=True, **config):
    """A 2-layer Llama (hidden 32) over the tokenizer's vocabulary. By default a
    :class:`RecordingLlama`; with ``routed_tasks`` it carries a ``samora_adapter`` whose config
    lists those tasks, like a model adapted by samora."""
    torch.manual_seed(seed)
    special = dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model_class = RecordingLlama if recording else LlamaForCausalLM
    model = model_class(tiny_llama_config(len(tokenizer), **{**special, **config})).eval()
    model.recorded = []
    if routed_tasks is not None:
        model.samora_adapter = SimpleNamespace(config=SimpleNamespace(method="stand-in", tasks=list(routed_tasks)))
    return model


class LargestTensor(TorchFunctionMode):
    """Remembers the largest tensor any torch function returned while active."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self.largest = max(self.largest, out.numel())
        return out


# A tiny tokenised multi-task dataset and a padding collator, standing in for samora.data in the training tests.
TASKS = ["alpha", "beta", "gamma"]
PAD = 0


def tiny_dataset(size: int = 16, *, seed: int = 0, min_len: int = 5, max_len: int = 9, task_token: bool = False):
    """Random token sequences with labels on the second half and a task id per example (a ``datasets.Dataset``).

    With ``task_token`` the first token is ``10 + task id``, so a test can tell each example's task
    from its input ids. A string column ``task_name`` is included: the Trainer must drop it.
    """
    from datasets import Dataset

    generator = torch.Generator().manual_seed(seed)
    rows = {"input_ids": [], "attention_mask": [], "labels": [], "task_ids": [], "task_name": []}
    for index in range(size):
        task = index % len(TASKS)
        length = int(torch.randint(min_len, max_len + 1, (), generator=generator))
        ids = torch.randint(3, VOCAB, (length,), generator=generator).tolist()
        if task_token:
            ids[0] = 10 + task
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * length)
        rows["labels"].append([-100] * (length // 2) + ids[length // 2 :])
        rows["task_ids"].append(task)
        rows["task_name"].append(TASKS[task])
    return Dataset.from_dict(rows)


class Collator:
    """Right-pads input_ids (0), attention_mask (0) and labels (-100); stacks task_ids.

    ``seen_keys`` records the feature names it received, so a test can check what the Trainer kept.
    """

    def __init__(self) -> None:
        self.seen_keys: set[str] = set()

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        for feature in features:
            self.seen_keys.update(feature)
        width = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([list(f[key]) + [value] * (width - len(f[key])) for f in features])

        batch = {
            "input_ids": pad("input_ids", PAD),
            "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", -100),
        }
        if "task_ids" in features[0]:
            batch["task_ids"] = torch.tensor([f["task_ids"] for f in features], dtype=torch.long)
        return batch


def adapted_model(seed: int = 0, perturb: float = 0.0, adapter_seed: int | None = None, **config):
    """The tiny Llama of ``seed`` with a SAMoRA adapter (r=4, 3 experts) initialised from ``adapter_seed``.

    ``perturb`` moves the adapter off its init (so every adapter parameter gets a gradient).
    """
    import samora

    options = {"r": 4, "num_experts": 3, "tasks": list(TASKS)} | config
    base = tiny_model(seed=seed)
    torch.manual_seed(seed if adapter_seed is None else adapter_seed)
    model = samora.get_model(base, samora.SAMoRAConfig(**options))
    if perturb:
        generator = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.add_(perturb * torch.randn(parameter.shape, generator=generator))
    return model


def adapter_tensors(model) -> dict[str, torch.Tensor]:
    from samora.adapter_files import adapter_state_dict

    return {k: v.clone() for k, v in adapter_state_dict(model).items()}


def smora_model(seed: int = 0):
    """The tiny Llama of ``seed`` with an SMoRA adapter (r=8, top_k=2) and a fast-moving bias."""
    import samora

    base = tiny_model(seed=seed)
    torch.manual_seed(seed)
    config = samora.SMoRAConfig(r=8, top_k=2, dropout=0.0, tasks=list(TASKS), bias_update_rate=0.05)
    return samora.get_model(base, config)


def subprocess_environment(**extra: str) -> dict[str, str]:
    """The environment of a test's child process: one OpenMP thread, and this checkout's ``src`` and root
    first on PYTHONPATH (so it runs this samora, and a worker script imports ``tests.helpers``)."""
    path = os.pathsep.join([str(SOURCE), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": path} | extra


def run_on_two_processes(worker: Path, output_dir: Path, timeout: float) -> None:
    """``torchrun --standalone --nproc_per_node 2 WORKER OUTPUT_DIR`` on CPU (gloo); fails the test with
    the end of the workers' output if it does not succeed."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    finished = subprocess.run(
        [*command, str(worker), str(output_dir)],
        env=subprocess_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]


RUN_TASKS = "[boolq, piqa, arc_easy]"  # the tasks of the tiny runs of the command-line tests


def run_overrides(model_dir, run_dir, *extra) -> list[str]:
    """The ``key=value`` overrides of a tiny ``samora train | eval`` run of the model folder ``model_dir``
    (the ``tiny_model_dir`` fixture) into ``run_dir``: 3 steps of 4 examples, 4 examples per task evaluated."""
    return [
        f"model.name={model_dir}",
        "model.dtype=float32",
        f"data.tasks={RUN_TASKS}",
        "data.per_task_cap=6",
        "data.max_length=128",
        "train.max_steps=3",
        "train.per_device_train_batch_size=4",
        "train.logging_steps=1",
        "eval.limit=4",
        "eval.batch_size=8",
        f"output_dir={run_dir}",
        *extra,
    ]
