"""What ``samora serve`` loads, and where: the adapter's description and the tokenizer in the HTTP
process (to check, tokenise and route requests), the adapted model in LitServe's inference worker
(``samora.run.model_loading.load_adapted``, with the run's ``model.*`` loading options)."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

from samora.config import ConfigError
from samora.serve.requests import UNSEEN, Served


def run_config(args: argparse.Namespace):
    """The run configuration whose ``model`` section loads the model: a run folder's saved config,
    then the ``model.*`` overrides, then ``--dtype``."""
    from samora.run.run_config import load_run_config
    from samora.run.run_folder import saved_run_values

    overrides = list(args.overrides)
    for item in overrides:
        if not item.startswith("model.") or "=" not in item:
            raise ConfigError(
                f"unexpected argument {item!r}: samora serve takes model loading options as model.key=value "
                "(e.g. model.dtype=bfloat16) after the adapter folder"
            )
    if args.dtype:
        overrides.append(f"model.dtype={args.dtype}")
    return load_run_config(None, overrides, base=saved_run_values(args.adapter))


def load_model(folder: Path, config) -> tuple[Any, Any]:
    """``(model, tokenizer)``: the adapter in ``folder`` on the base model it names (in the worker)."""
    from samora.run.model_loading import load_adapted

    model, tokenizer, _ = load_adapted(folder, config)
    return model, tokenizer


def load_tokenizer(name: str):
    """The base model's tokenizer, without its weights (the offline SmolLM2 by its alias, or a folder / hub id)."""
    from transformers import AutoTokenizer

    from samora.cache import bundled_model_name
    from samora.models.smollm2 import SMOLLM2_ALIASES, smollm2_path

    path = smollm2_path() if name in SMOLLM2_ALIASES or bundled_model_name(name) else name
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, path


def describe(args: argparse.Namespace, folder: Path, config, saved: dict) -> tuple[Served, Any]:
    """What the HTTP process needs: the adapter's method and tasks, the limits, and the tokenizer."""
    from transformers import AutoConfig

    import samora

    name = config.model.name or saved.get("base_model")
    if not name:
        raise ConfigError(f"the adapter in {folder} does not name its base model; add model.name=<hub id or folder>")
    tokenizer, path = load_tokenizer(name)
    method = saved.get("method", "lora")  # a PEFT LoRA folder records no samora method
    config_class, _ = samora.METHODS[method]
    tasks = tuple(saved.get("tasks") or ())
    check_default_task(args.default_task, tasks, method, config_class)
    context = int(getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None) or 2048)
    served = Served(
        name=args.served_model_name or _folder_name(args.adapter),
        method=method,
        tasks=tasks,
        needs_task=config_class.requires_task or (config_class.uses_task and bool(tasks)),
        default_task=args.default_task,
        context_window=context,
        max_prompt_tokens=min(args.max_prompt_tokens or context, context),
        max_tokens_limit=args.max_tokens_limit,
    )
    return served, tokenizer


def check_default_task(default: str | None, tasks: tuple[str, ...], method: str, config_class) -> None:
    if default is None or default in tasks:
        return
    if default != UNSEEN:
        raise ConfigError(f"--default-task {default!r} is not a task of this adapter; its tasks: {list(tasks)}")
    if not config_class.uses_task or config_class.requires_task:
        raise ConfigError(
            f"--default-task unseen: method {method!r} has no unseen-task route (SAMoRA and MoORE have one); "
            f"name one of its tasks {list(tasks)} instead"
        )


def _folder_name(adapter: str) -> str:
    path = Path(adapter).resolve()
    return path.parent.name if path.name == "adapter" else path.name


def build_server(args: argparse.Namespace):
    """The LitServer of ``samora serve`` and its startup line (model, tasks, method, device, address)."""
    import litserve as ls
    import torch
    from starlette.exceptions import HTTPException

    from samora.run.model_loading import adapter_folder, read_saved_adapter
    from samora.serve.server import MixtureAPI, MixtureSpec, openai_errors

    folder = adapter_folder(args.adapter)
    saved = read_saved_adapter(folder)
    config = run_config(args)
    served, tokenizer = describe(args, folder, config, saved)
    api = MixtureAPI(
        MixtureSpec(served, tokenizer),
        functools.partial(load_model, folder, config),
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        api_key=args.api_key,
    )
    server = ls.LitServer(api, accelerator="auto", devices=1, timeout=False, max_payload_size=args.max_payload_size)
    openai_errors(server.app, HTTPException)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = config.model.name or saved.get("base_model")
    return server, startup_line(args, served, f"{folder} on {base}", f"{device}, dtype {config.model.dtype}")


def startup_line(args: argparse.Namespace, served: Served, where: str, device: str) -> str:
    """What ``samora serve`` prints before it starts: the adapter, its tasks, the device and the address."""
    default = f"; unknown tasks -> {served.default_task}" if served.default_task else ""
    key = " (bearer API key required)" if args.api_key else ""
    return (
        f"[samora] serving the {served.method} adapter {served.name!r} ({where})"
        f"\n[samora] tasks: {list(served.tasks) or '(none: one model id)'}{default}"
        f"\n[samora] device {device}; batches of up to {args.max_batch_size} requests, {args.batch_timeout} s to fill"
        f"\n[samora] OpenAI API at http://{args.host}:{args.port}/v1{key}; GET /health is 200 once the model is loaded"
    )
