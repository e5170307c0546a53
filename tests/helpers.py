"""A tiny tokenised multi-task dataset and a padding collator, standing in for samora.data in tests."""

from __future__ import annotations

import torch
from conftest import VOCAB
from datasets import Dataset

TASKS = ["alpha", "beta", "gamma"]
PAD = 0


def tiny_dataset(
    size: int = 16, *, seed: int = 0, min_len: int = 5, max_len: int = 9, task_token: bool = False
) -> Dataset:
    """Random token sequences with labels on the second half and a task id per example.

    With ``task_token`` the first token is ``10 + task id``, so a test can tell each example's task
    from its input ids. A string column ``task_name`` is included: the Trainer must drop it.
    """
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
    from conftest import tiny_model

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
    from samora.persistence import adapter_state_dict

    return {k: v.clone() for k, v in adapter_state_dict(model).items()}


def smora_model(seed: int = 0):
    """The tiny Llama of ``seed`` with an SMoRA adapter (r=8, top_k=2) and a fast-moving bias."""
    from conftest import tiny_model

    import samora

    base = tiny_model(seed=seed)
    torch.manual_seed(seed)
    config = samora.SMoRAConfig(r=8, top_k=2, dropout=0.0, tasks=list(TASKS), bias_update_rate=0.05)
    return samora.get_model(base, config)
