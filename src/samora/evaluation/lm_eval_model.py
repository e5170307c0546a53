"""lm-evaluation-harness model ``samora``: an adapter evaluated with each lm-eval task routed to its task id.

Importing this module registers the model with lm-eval's ``register_model``; ``pip install
samora[lm-eval]`` brings lm-eval. lm-eval 0.4.13 discovers no out-of-tree models from its own CLI,
so ``samora-lm-eval`` is its CLI with this model registered (same arguments)::

    samora-lm-eval --model samora --model_args pretrained=BASE,adapter=RUN --tasks arc_easy,piqa
    lm_eval.simple_evaluate(model="samora", model_args="adapter=RUN", ...)  # after importing this module

Model arguments, besides those of lm-eval's ``hf`` model (``HFLM``):

- ``adapter``: a samora run folder or adapter folder (or a PEFT LoRA folder).
- ``pretrained``: the base model; default: the one the adapter names (``smollm2-135m-instruct``
  works offline as everywhere in samora).
- ``task_map``: ``lm_eval_task:adapter_task`` pairs separated by ``|`` (a dict from Python); the
  value ``unseen`` forces the unseen-task route.

Routing. Each request carries its lm-eval task name (``Instance.task_name``). Requests are grouped by
task and each group runs with ``task_ids`` set to one id: ``task_map`` first, else the name itself
when the adapter was trained on it, else the name mapped through samora's task registry and aliases
(``arc_easy``, ``ARC-Easy``, ``arc-e``...). A task the adapter does not know takes the unseen-task
route (id -1) when the method has one (SAMoRA, MoORE), with a warning; methods that need a task id
(MoELoRA, MTL-LoRA) refuse it. Methods without task routing ignore the id. The routes used are in
the results under ``config.samora_routing``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import torch

try:
    from lm_eval.api.registry import register_model
    from lm_eval.models.huggingface import HFLM
except ImportError as err:  # the optional extra is not installed
    raise ImportError("samora's lm-eval model needs lm-evaluation-harness: pip install 'samora[lm-eval]'") from err

import samora
from samora.routing import UNSEEN_TASK

logger = logging.getLogger("samora")
UNSEEN_NAMES = ("unseen", "-1")


def parse_task_map(task_map: str | dict | None) -> dict[str, str]:
    """``"a:x|b:y"`` (or a dict) -> ``{"a": "x", "b": "y"}``, with a clear error for other text."""
    if task_map is None or isinstance(task_map, dict):
        return dict(task_map or {})
    pairs = [item.split(":") for item in str(task_map).split("|") if item.strip()]
    bad = [":".join(pair) for pair in pairs if len(pair) != 2 or not all(p.strip() for p in pair)]
    if bad:
        raise ValueError(f"task_map entries must be 'lm_eval_task:adapter_task' separated by '|', got {bad}")
    return {key.strip(): value.strip() for key, value in pairs}


class TaskRouter:
    """lm-eval task name -> the adapter's task id (or -1, or None for methods without task routing)."""

    def __init__(self, config: samora.AdapterConfig, task_map: dict[str, str]) -> None:
        self.config = config
        self.task_map = task_map
        self.routes: dict[str, dict] = {}  # what each lm-eval task used, for the results

    def task_id(self, lm_task: str | None) -> int | None:
        """The id requests of ``lm_task`` run with; records the route taken."""
        if lm_task not in self.routes:
            self.routes[lm_task] = self._route(lm_task) | {"requests": 0}
        return self.routes[lm_task]["task_id"]

    def _route(self, lm_task: str | None) -> dict:
        config, tasks = self.config, self.config.tasks
        if not config.uses_task:
            return {"adapter_task": None, "task_id": None, "how": f"'{config.method}' does not route by task"}
        wanted = self.task_map.get(lm_task, lm_task) if lm_task is not None else None
        if wanted in UNSEEN_NAMES and lm_task in self.task_map:
            return self._unseen(lm_task, "task_map asks for the unseen-task route")
        for name, how in (
            (wanted, "task_map" if lm_task in self.task_map else "same name"),
            (_registry_name(wanted), "samora task registry"),
        ):
            if name is not None and name in tasks:
                return {"adapter_task": name, "task_id": tasks.index(name), "how": how}
        if lm_task in self.task_map:
            raise ValueError(
                f"task_map maps {lm_task!r} to {wanted!r}, which is not a task of this adapter; "
                f"its tasks are {tasks} (or 'unseen')"
            )
        return self._unseen(lm_task, "not a task of this adapter")

    def _unseen(self, lm_task: str | None, why: str) -> dict:
        config = self.config
        if config.requires_task:
            raise ValueError(
                f"lm-eval task {lm_task!r} is not one of this '{config.method}' adapter's tasks {config.tasks}, "
                f"and '{config.method}' has no route for unseen tasks; map it with "
                f"task_map={lm_task}:<one of {config.tasks}>"
            )
        logger.warning(
            "[samora] lm-eval task %r: %s; it is scored through the unseen-task route (id -1)", lm_task, why
        )
        return {"adapter_task": "unseen", "task_id": UNSEEN_TASK, "how": why}


def _registry_name(name: str | None) -> str | None:
    from samora.data.tasks import get_task

    try:
        return get_task(name).name if name else None
    except (ValueError, KeyError):
        return None


@register_model("samora")
class SamoraLM(HFLM):
    """lm-eval's Hugging Face model with a samora adapter and per-task routing (see the module doc)."""

    def __init__(
        self, adapter: str, pretrained: str | None = None, task_map: str | dict | None = None, **kwargs
    ) -> None:
        folder = _adapter_folder(Path(adapter))
        saved = _saved_config(folder)
        super().__init__(
            pretrained=_base_path(pretrained or saved.get("base_model") or saved.get("base_model_name_or_path")),
            **kwargs,
        )
        samora.load_adapter(self._model, folder)
        self._model.eval()
        self.adapter = str(folder)
        self.router = TaskRouter(samora.adapter_of(self._model).config, parse_task_map(task_map))
        self._task_id: int | None = None

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self._per_task(super().loglikelihood, requests, disable_tqdm=disable_tqdm)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self._per_task(super().loglikelihood_rolling, requests, disable_tqdm=disable_tqdm)

    def generate_until(self, requests, disable_tqdm: bool = False):
        return self._per_task(super().generate_until, requests, disable_tqdm=disable_tqdm)

    def _per_task(self, run: Callable, requests: list, **kwargs) -> list:
        """Run ``requests`` one lm-eval task at a time with that task's id; results in request order."""
        groups: dict[str | None, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.task_name, []).append(index)
        results: list = [None] * len(requests)
        for lm_task, indices in groups.items():
            self._task_id = self.router.task_id(lm_task)
            self.router.routes[lm_task]["requests"] += len(indices)
            try:
                outputs = run([requests[i] for i in indices], **kwargs)
            finally:
                self._task_id = None
            for index, output in zip(indices, outputs):
                results[index] = output
        return results

    def _model_call(self, inps: torch.Tensor, attn_mask=None, labels=None) -> torch.Tensor:
        """Logits (batch, seq, vocab) of a causal LM call, with the current task's ids."""
        if attn_mask is not None or labels is not None:
            raise ValueError("the samora model evaluates causal LMs only (no encoder-decoder backend)")
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            return self.model(inps, task_ids=self._task_id).logits

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        return super()._model_generate(context, max_length, stop, task_ids=self._task_id, **generation_kwargs)

    def get_model_info(self) -> dict:
        """lm-eval's model info plus the adapter and the route each lm-eval task took."""
        return super().get_model_info() | {"samora_adapter": self.adapter, "samora_routing": self.router.routes}


def _adapter_folder(path: Path) -> Path:
    return path / "adapter" if (path / "adapter" / "adapter_config.json").is_file() else path


def _saved_config(folder: Path) -> dict:
    import json

    path = folder / "adapter_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"adapter={folder}: no adapter_config.json; give a samora run or adapter folder")
    return json.loads(path.read_text())


def _base_path(name: str | None) -> str:
    """A folder or hub id for ``HFLM``; samora's offline SmolLM2 aliases become its converted folder."""
    from samora.cache import bundled_model_name
    from samora.models.smollm2 import SMOLLM2_ALIASES

    if not name:
        raise ValueError("the adapter does not name its base model: pass pretrained=<model folder or hub id>")
    if name in SMOLLM2_ALIASES or bundled_model_name(name):  # the name, or an older adapter's cache path
        from samora.models.smollm2 import smollm2_path

        return str(smollm2_path())
    return name


def cli() -> None:
    """``samora-lm-eval``: lm-eval's command line with the ``samora`` model registered."""
    from lm_eval.__main__ import cli_evaluate

    sys.argv[0] = "lm_eval"
    cli_evaluate()


if __name__ == "__main__":
    cli()
