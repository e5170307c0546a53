"""``samora serve RUN_OR_ADAPTER``: its options, and the start of the server.

The adapter is a run folder (its ``config.yaml`` gives the model loading options), an adapter folder
or a PEFT LoRA folder; ``model.*`` overrides (``model.name=...``, ``model.dtype=...``, every loading
option of a run) follow it as in ``samora eval``. Nothing here imports torch until the command runs.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal

DEFAULT_MAX_TOKENS_LIMIT = 1024


def add_serve_command(commands) -> None:
    """Register ``serve`` on the ``samora`` command's subparsers."""
    serve = commands.add_parser(
        "serve",
        help="serve an adapter over OpenAI's API (the task from the request's model), mixed-task batches",
        description="Serve an adapter over OpenAI's /v1/completions, /v1/chat/completions and /v1/models; "
        "a request's model field names its task ('boolq' or '<adapter>:boolq'). See docs/serving.md.",
    )
    serve.add_argument("adapter", help="a run folder, an adapter folder or a PEFT LoRA folder")
    serve.add_argument(
        "overrides", nargs="*", metavar="model.key=value", help="model loading options, e.g. model.name=FOLDER"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", choices=["127.0.0.1", "0.0.0.0", "::"], help="(default: %(default)s)"
    )
    serve.add_argument("--port", type=int, default=8000, help="1024-65535 (default: %(default)s)")
    serve.add_argument("--max-batch-size", type=int, default=8, help="requests per batch (default: %(default)s)")
    serve.add_argument(
        "--batch-timeout", type=float, default=0.05, help="seconds a batch waits to fill (default: %(default)s)"
    )
    serve.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], help="same as model.dtype=")
    serve.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1/* (OpenAI's api_key)")
    serve.add_argument(
        "--default-task",
        help="the task an unknown model name gets, instead of a 400: a served task, or 'unseen' (the unseen-task "
        "route of SAMoRA and MoORE); the response's samora field says so",
    )
    serve.add_argument("--served-model-name", help="the adapter's name in model ids (default: the folder's name)")
    serve.add_argument(
        "--max-prompt-tokens", type=int, help="the longest prompt accepted (default: the context window)"
    )
    serve.add_argument(
        "--max-tokens-limit",
        type=int,
        default=DEFAULT_MAX_TOKENS_LIMIT,
        help="the most tokens a request may ask to generate (default: %(default)s)",
    )
    serve.add_argument(
        "--max-payload-size",
        type=int,
        default=1_000_000,
        help="the largest request body in bytes (default: %(default)s)",
    )
    serve.add_argument("--verbose", action="store_true", help="debug messages")
    serve.set_defaults(run=command_serve)


def command_serve(args: argparse.Namespace) -> int:
    """Check the options, load the tokenizer here and the model in LitServe's worker, serve until stopped."""
    from samora.config import ConfigError

    for name in ("max_batch_size", "max_tokens_limit", "max_prompt_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.batch_timeout < 0:
        raise ConfigError(f"--batch-timeout must be 0 or more seconds, got {args.batch_timeout}")
    if not 1024 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 1024 to 65535 (LitServe's range), got {args.port}")
    from samora.serve.loading import build_server

    server, startup = build_server(args)
    print(startup, flush=True)
    signal.signal(signal.SIGTERM, functools.partial(_stop, os.getpid()))
    server.run(
        host=args.host, port=args.port, generate_client_file=False, log_level="debug" if args.verbose else "info"
    )
    print("[samora] server stopped", flush=True)
    return 0


def _stop(server_pid: int, signum, frame) -> None:
    """SIGTERM: the server process shuts down as on Ctrl+C (LitServe's graceful shutdown on
    KeyboardInterrupt); its forked HTTP processes, which inherit this handler, just exit."""
    if os.getpid() == server_pid:
        raise KeyboardInterrupt
    raise SystemExit(0)
