"""What ``samora train | eval | analyze`` do, as functions: one run folder per run.

```
run_dir/
  config.yaml        the configuration as used (preset + file + overrides, validated)
  adapter/           the trained adapter (adapter_model.safetensors, adapter_config.json) and checkpoints
  metrics.json       evaluation before and after training, training summary
  history.jsonl      every logged training scalar (loss, lr, grad norm, router/gate statistics), per step
  tensorboard/       TensorBoard event files (train.report_to=tensorboard)
  samples_before.jsonl, samples_after.jsonl   per-example records of each evaluation
  report.md          a readable summary with the plots
  plots/             training_loss.png, task_metrics.png
  analysis/          router usage, expert PCA, task gates (PNG + JSON)
  evals/eval-001/    each later `samora eval --adapter RUN`: eval.json, samples.jsonl, config.yaml
  analysis-002/      each later `samora analyze RUN` (analysis/ is never overwritten)
```

``metrics.json`` is written last: a folder without it holds an unfinished run, which rerunning the
same command resumes (see :mod:`samora.run.run_folder` for what ``train`` does with an existing folder).

``samora eval --adapter RUN`` and ``samora analyze RUN`` take every setting the user does not set
(on the command line, in a config file or a preset) from ``RUN/config.yaml``: the run's tasks,
template, data source, max_length, evaluation settings, model and seed; results go into ``RUN``
unless ``output_dir=`` is given on the command line. Each evaluation writes a new numbered folder
(``evals/eval-001``, ``eval-002``, ...), as lm-eval's timestamped result files never replace
earlier ones; without a run folder (an adapter folder, a PEFT LoRA folder, the plain base model)
the same folders go under ``output_dir``. A requested task that no data source holds is an error
naming each such task and why, before any model loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from samora.files import write_text_atomic
from samora.run.config_checks import prompt_template
from samora.run.model_checks import check_adapter_fits, check_stream_has_targets, warn_unseen_tasks
from samora.run.model_loading import (
    DEFAULT_MODEL,
    adapter_folder,
    load_adapted,
    load_base_model,
    read_saved_adapter,
    torch_dtype,  # noqa: F401  (still importable from here, as before the move)
)
from samora.run.processes import is_main_process, main_only_folder, quiet_unless_main
from samora.run.run_folder import plan_run_folder
from samora.run.run_tasks import (
    chat_format,
    chat_options,
    check_task_data,
    record_tasks,
    resolve_run_tasks,
    warn_if_tasks_changed,
)
from samora.run.sections import RunConfig, TrainSection

logger = logging.getLogger(__name__)


def save_config(config: RunConfig, run_dir: Path, name: str = "config.yaml") -> None:
    """Write ``config`` to ``run_dir/name``, headed by a comment with the command that made it.

    ``output_dir`` is recorded as the user gave it (relative to where the command ran when relative),
    so a committed or copied run folder holds no path of the machine it was made on.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    header = f"# made by: {invoking_command()}\n"
    write_text_atomic(run_dir / name, header + yaml.safe_dump(config.to_dict(), sort_keys=False))


def invoking_command() -> str:
    """The command line of this process as the user typed it: ``samora train demo.yaml train.max_steps=5``
    (the program's name, not its path: ``python -m samora`` and the installed script both read ``samora``)."""
    program = Path(sys.argv[0]).name
    program = "samora" if program in ("__main__.py", "cli.py") else program
    return shlex.join([program, *sys.argv[1:]])


def evaluate_model(
    model, tokenizer, config: RunConfig, tasks: list[str], samples_path: Path | None = None
) -> dict[str, Any]:
    """Evaluate as ``config.eval`` says (examples subsampled with ``train.seed``); with
    ``samples_path``, also write the per-example records there (``samples.jsonl``)."""
    from samora.evaluation import evaluate, write_samples

    results = evaluate(
        model,
        tokenizer,
        tasks,
        evaluation_options(config),
        source=config.data.source,
        template=prompt_template(config),
        log_samples=samples_path is not None,
    )
    if samples_path is not None:
        write_samples(results, samples_path)
    return results


def evaluation_options(config: RunConfig):
    """The :class:`~samora.evaluation.EvaluationOptions` of ``config.eval`` (examples subsampled with
    ``train.seed``; a progress bar per task with ``--verbose``)."""
    from samora.evaluation import EvaluationOptions
    from samora.evaluation.settings import EvaluationSettings
    from samora.run.logs import progress_bars_enabled

    settings = {f.name: getattr(config.eval, f.name) for f in dataclasses.fields(EvaluationSettings)}
    return EvaluationOptions(
        **settings, seed=config.train.seed, progress=progress_bars_enabled(), **chat_options(config)
    )


def run_train(config: RunConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Adapt, (evaluate,) train, save, evaluate, analyse and report; return the metrics.

    An unfinished run of the same configuration in ``output_dir`` is resumed from its last valid
    checkpoint (unless ``train.resume`` is false); a finished one is replaced only with ``overwrite``.
    The run holds the folder's lock (:mod:`samora.run.folder_lock`): a second command on the same
    folder is refused while this one runs.
    The warnings logged on the way are repeated in ``report.md``.
    """
    from samora.run.folder_lock import run_folder_lock
    from samora.run.logs import recorded_warnings

    # one process per run folder (the main one holds the lock for all ranks of a distributed run)
    lock = run_folder_lock(config.output_dir) if is_main_process() else contextlib.nullcontext()
    with lock, recorded_warnings() as warnings:
        return _run_train(config, overwrite, warnings)


def _run_train(config: RunConfig, overwrite: bool, warnings: list[str]) -> dict[str, Any]:
    import samora
    from samora.run.report import write_report

    run_dir = Path(config.output_dir)
    tasks = resolve_run_tasks(config)
    adapter_config = config.adapter_config(tasks.names)  # validated before the model loads
    check_task_data(config, tasks, ["train", config.eval.split])
    main = is_main_process()
    if config.compare.methods:
        _say(
            main,
            f"this configuration is a comparison ({config.compare.methods}): `samora compare` runs it; "
            f"`samora train` trains only adapter.method={config.adapter.get('method', 'samora')}",
        )
    plan = plan_run_folder(run_dir, config, overwrite=overwrite)  # read-only: refuse before loading
    torch.manual_seed(config.train.seed)
    model, tokenizer = load_base_model(config.model.name or DEFAULT_MODEL, config.model.dtype, config.model)
    check_adapter_fits(model, adapter_config)
    stream = build_stream(config, tokenizer, tasks)
    check_stream_has_targets(stream, config.data.max_length)
    _start_run_folder(run_dir, config, plan, main)  # the first write, once the model checks passed
    if main:
        record_tasks(tasks, run_dir)
    metrics: dict[str, Any] = {"tasks": tasks.names, "model": config.model.name or DEFAULT_MODEL}
    if config.eval.before:  # on every process, see is_main_process
        _say(main, "evaluating the base model")
        metrics["before"] = _evaluate_on_every_process(
            model, tokenizer, config, tasks, run_dir / "samples_before.jsonl"
        )
    model = samora.get_model(model, adapter_config)
    _say(main, f"{adapter_config.method}: {samora.trainable_parameters(model)}")
    result, metrics["train"] = train_adapter(
        model, tokenizer, stream, config, run_dir / "adapter", resume=plan.resume_from or False, run_dir=run_dir
    )
    _say(main, "evaluating the adapted model")
    metrics["after"] = _evaluate_on_every_process(model, tokenizer, config, tasks, run_dir / "samples_after.jsonl")
    with main_only_folder(run_dir / "analysis") as analysis_dir, quiet_unless_main():
        metrics["analysis"] = run_analysis_on(model, tokenizer, config, tasks, analysis_dir)
    if not main:
        return metrics
    collapse = (metrics["analysis"].get("collapse") or {}).get("warning")
    if collapse:
        logger.warning("router: %s", collapse)
    report = write_report(run_dir, config, metrics, result.log_history, warnings=list(warnings))
    # metrics.json last: its presence marks the run as finished
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=str))
    _say(main, f"adapter: {run_dir / 'adapter'}")
    _say(main, f"report: {report}")
    return metrics


def _start_run_folder(run_dir: Path, config: RunConfig, plan, main: bool) -> None:
    """Carry out on the main process the ``plan`` every process made (read-only) for ``run_dir``."""
    from samora.run.run_folder import prepare_run_folder

    if main:
        prepare_run_folder(run_dir, plan)
        save_config(config, run_dir)
    _say(main, plan.describe(run_dir))


def build_stream(config: RunConfig, tokenizer, tasks: list[str]):
    """The mixed multi-task training stream of ``config.data`` (drawn with ``train.seed``)."""
    from samora.data import build_training_stream

    _say(is_main_process(), f"building the {len(tasks)}-task training stream ({config.data.tasks})")
    return build_training_stream(
        tokenizer,
        tasks,
        max_length=config.data.max_length,
        per_task_cap=config.data.per_task_cap,
        sampling=config.data.sampling,
        temperature=config.data.temperature,
        seed=config.train.seed,
        template=prompt_template(config),
        source=config.data.source,
        chat=chat_format(config, tokenizer),
    )


def train_adapter(
    model,
    tokenizer,
    stream,
    config: RunConfig,
    output_dir: Path,
    seed: int | None = None,
    resume: bool | str = False,
    *,
    run_dir: Path,
):
    """Train an adapted ``model`` on ``stream`` as ``config.train`` says (``seed`` overrides
    ``train.seed``; ``resume``: a checkpoint to continue from, or False) into ``output_dir``; the
    training history goes to ``run_dir/history.jsonl``, TensorBoard's events (``train.report_to``) to
    ``run_dir/tensorboard``. The Trainer's progress bar shows when progress bars are on (the CLI's
    ``--verbose``), else one line per logging step. Return the :class:`~samora.training.TrainResult`
    and its JSON summary."""
    import samora
    from samora.training import train
    from samora.training.history import HistoryFile

    count = samora.trainable_parameters(model)
    result = train(
        model,
        tokenizer,
        stream,
        output_dir=output_dir,
        settings=_train_settings(config.train, seed=seed, resume=resume, run_dir=run_dir),
        callbacks=[HistoryFile(run_dir / "history.jsonl")],
        **config.train.training_arguments,
    )
    summary = {
        "steps": result.global_step,
        "train_loss": result.train_loss,  # train.on_nonfinite=skip: the mean over the steps not skipped
        "skipped_steps": _skipped_steps(result.log_history),
        "runtime_s": result.runtime_s,
        "tokens_per_second": result.tokens_per_second,
        "loss_history": result.loss_history,
        "examples": len(stream),
        "trainable_parameters": count.trainable,
        "total_parameters": count.total,
        "method": samora.adapter_of(model).config.method,
        "processes": _process_count(),
    }
    return result, summary


def _train_settings(section: TrainSection, *, seed: int | None, resume: bool | str, run_dir: Path):
    """The :class:`~samora.training.TrainSettings` of ``train.*`` (``seed``, when given, replaces
    ``train.seed``), with TensorBoard's folder and the console output of the run folder ``run_dir``."""
    from samora.run.logs import progress_bars_enabled
    from samora.training import TrainSettings
    from samora.training.settings import TrainingSettings

    shared = {f.name: getattr(section, f.name) for f in dataclasses.fields(TrainingSettings)}
    return TrainSettings(  # the section and the settings extend the one TrainingSettings
        **shared
        | {
            "seed": section.seed if seed is None else seed,
            "resume": resume,
            "logging_dir": run_dir / "tensorboard",
            "progress": "bar" if progress_bars_enabled() else "lines",
        }
    )


def run_eval(config: RunConfig, adapter_dir: str | None) -> dict[str, Any]:
    """Evaluate an adapter folder (or, with none, the plain base model); write the results to a new
    ``evals/eval-NNN/`` under ``output_dir`` (a run folder's own, see the module docstring)."""
    from samora.evaluation import format_table, write_results
    from samora.run.run_folder import new_results_folder

    tasks = resolve_run_tasks(config)
    check_task_data(config, tasks, [config.eval.split])
    if adapter_dir:
        warn_if_tasks_changed(tasks, adapter_dir)
        saved = read_saved_adapter(adapter_folder(adapter_dir))
        warn_unseen_tasks(tasks, saved.get("tasks") or [], adapter_dir)
        model, tokenizer, _ = load_adapted(adapter_folder(adapter_dir), config, saved)
    else:
        model, tokenizer = load_base_model(config.model.name or DEFAULT_MODEL, config.model.dtype, config.model)
    output = new_results_folder(Path(config.output_dir) / "evals", "eval", numbered_first=True)
    try:
        results = evaluate_model(model, tokenizer, config, tasks, output / "samples.jsonl")
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)  # no half-written evaluation folder
        raise
    save_config(config, output)
    record_tasks(tasks, output)
    print(format_table(results))
    path = write_results(results, output / "eval.json")
    print(f"[samora] results: {path}\n[samora] per-example records: {output / 'samples.jsonl'}", flush=True)
    return results


def run_analyze(config: RunConfig, adapter_dir: str) -> dict[str, Any]:
    """Analyse an adapter's routing into a new ``analysis/`` (``analysis-002``, ... when that is
    taken) under ``output_dir`` (a run folder's own, see the module docstring)."""
    from samora.run.run_folder import new_results_folder

    folder = adapter_folder(adapter_dir)
    saved = read_saved_adapter(folder)
    resolve_run_tasks(config)  # registers the run's own tasks, which the adapter's names refer to
    check_task_data(config, saved["tasks"], [config.eval.split])
    model, tokenizer, _ = load_adapted(folder, config, saved)
    output = new_results_folder(Path(config.output_dir), "analysis", numbered_first=False)
    result = run_analysis_on(model, tokenizer, config, saved["tasks"], output)
    if "skipped" in result:
        output.rmdir()  # nothing was written
        print(f"[samora] not analysed: {result['skipped']}", flush=True)
    else:
        print(f"[samora] analysis: {output}", flush=True)
    return result


def run_analysis_on(model, tokenizer, config: RunConfig, tasks: list[str], output: Path) -> dict[str, Any]:
    """Router usage, expert PCA and task gates on held-out examples of every task."""
    import samora
    from samora.analysis import analyze

    adapter = samora.adapter_of(model).config
    if adapter.merge_kind == "static":
        return {"skipped": f"method '{adapter.method}' has no router or task gate"}
    from samora.data import MultiTaskCollator, load_examples
    from samora.data.encoding import tokenize_for_training

    batches = []
    collate = MultiTaskCollator(tokenizer)
    for task_id, task in enumerate(tasks):
        examples = load_examples(task, config.eval.split, source=config.data.source, limit=16, seed=config.train.seed)
        encoded = tokenize_for_training(
            tokenizer, list(examples["prompt"]), list(examples["target"]), max_length=config.data.max_length
        )
        rows = [{**{k: v[i] for k, v in encoded.items()}, "task_ids": task_id} for i in range(len(examples))]
        batches.extend(collate(rows[i : i + 8]) for i in range(0, len(rows), 8))
    if not batches:
        return {"skipped": "no evaluation examples available for analysis"}
    return analyze(model, batches, output)


def _skipped_steps(log_history: list[dict]) -> int:
    """The steps ``train.on_nonfinite=skip`` skipped (the last count logged; 0 without skipping)."""
    counts = [entry["nonfinite_skipped_steps"] for entry in log_history if "nonfinite_skipped_steps" in entry]
    return counts[-1] if counts else 0


def _process_count() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _evaluate_on_every_process(model, tokenizer, config: RunConfig, tasks: list[str], samples_path: Path) -> dict:
    """:func:`evaluate_model` on every process (see :func:`is_main_process`); the main one alone writes the
    per-example records to ``samples_path``, logs the per-task lines and prints the table."""
    from samora.evaluation import format_table

    main = is_main_process()
    with quiet_unless_main():
        results = evaluate_model(model, tokenizer, config, tasks, samples_path if main else None)
    if main:
        print(format_table(results), flush=True)
    return results


def _say(main: bool, message: str) -> None:
    """Log ``message`` at INFO on the main process (the CLI shows it as ``[samora] message``)."""
    if main:
        logger.info(message)
