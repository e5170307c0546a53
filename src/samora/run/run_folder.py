"""A run folder holds one run: never clobbered, never mixed, and resumed by rerunning the same command.

What ``samora train`` does with ``output_dir`` (like ``git clone``, which refuses a non-empty
destination, and the HF Trainer's ``resume_from_checkpoint``):

=============================================  ==========================================================
the folder                                     ``samora train``
=============================================  ==========================================================
absent or empty                                starts a new run
finished (``metrics.json``, written last)      refuses, unless ``--overwrite``
unfinished, same configuration                 resumes from the last valid checkpoint (``train.resume``)
unfinished, another configuration              refuses, unless ``--overwrite`` or ``--no-resume``
unfinished, failed before training a step      starts over (nothing to resume; the fixed command runs)
not a run folder (no ``config.yaml``)          refuses (choose an empty or new folder)
=============================================  ==========================================================

Discarding a run (``--overwrite``, or ``--no-resume`` on an unfinished one) first renames the whole
folder aside in one step, then deletes it: after a crash the folder holds the old run or none of
it, never a mix. The new run's ``metrics.json`` is written last, so a folder without it is
unfinished, whatever else it holds.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from samora.run.run_config import ConfigError, RunConfig, config_from_dict, effective_values

CONFIG_FILE = "config.yaml"
FINISHED_MARKER = "metrics.json"
ADAPTER_FOLDER = "adapter"
# keys that say how to run, not what the run is: they may differ between a run and its resumption
NOT_COMPARED = {("output_dir",), ("train", "resume")}


@dataclass(frozen=True)
class RunPlan:
    """What ``samora train`` will do with its ``output_dir``.

    Attributes:
        action: ``"new"`` (empty or absent folder), ``"resume"`` (an unfinished run of the same
            configuration) or ``"replace"`` (discard the folder's run first).
        resume_from: the checkpoint to continue from (``"resume"`` only; None: start at step 0).
        reason: why a folder is replaced without ``--overwrite`` (a run that never trained a step).
    """

    action: str
    resume_from: str | None = None
    reason: str | None = None

    def describe(self, run_dir: Path) -> str:
        if self.action == "resume":
            where = f"from {self.resume_from}" if self.resume_from else "from step 0 (no valid checkpoint yet)"
            return f"resuming the unfinished run in {run_dir} {where}"
        because = f" ({self.reason})" if self.reason else ""
        return f"{'replacing the run in' if self.action == 'replace' else 'new run in'} {run_dir}{because}"


def plan_run_folder(run_dir: str | os.PathLike, config: RunConfig, *, overwrite: bool = False) -> RunPlan:
    """Decide, without changing anything, what to do with ``run_dir``; refuse with a clear message."""
    from samora.training import last_complete_checkpoint

    run_dir = Path(run_dir)
    if not run_dir.exists() or not any(not _is_temporary(p) for p in run_dir.iterdir()):
        return RunPlan("new")
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            f"output_dir {str(run_dir)!r} exists and is not a samora run folder (no {CONFIG_FILE}); "
            "choose a new or empty output_dir"
        )
    if overwrite:
        return RunPlan("replace")
    if (run_dir / FINISHED_MARKER).is_file():
        raise ConfigError(
            f"output_dir {str(run_dir)!r} holds a finished run ({FINISHED_MARKER}); pass --overwrite "
            "to replace it, or choose another output_dir"
        )
    if not config.train.resume:
        return RunPlan("replace")
    differences = config_differences(_read_saved_config(run_dir), effective_values(config))
    if differences and not _trained_a_step(run_dir):
        return RunPlan("replace", reason="its run of another configuration failed before training a step")
    if differences:
        raise ConfigError(
            f"output_dir {str(run_dir)!r} holds an unfinished run with another configuration "
            f"({'; '.join(differences[:5])}). Rerun with its configuration to resume it, pass "
            "--no-resume or --overwrite to discard it, or choose another output_dir"
        )
    return RunPlan("resume", last_complete_checkpoint(run_dir / ADAPTER_FOLDER))


def prepare_run_folder(run_dir: str | os.PathLike, plan: RunPlan) -> None:
    """Carry out ``plan`` (main process only): a replaced run is renamed aside in one step, then deleted."""
    run_dir = Path(run_dir)
    if plan.action == "replace":
        discarded = run_dir.with_name(f".{run_dir.name}.discarded-{time.time_ns()}")
        os.replace(run_dir, discarded)  # atomic: the folder is the old run or absent, never half of it
        shutil.rmtree(discarded, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def saved_run_values(path: str | os.PathLike | None) -> dict | None:
    """The saved ``config.yaml`` of the run folder ``path`` as a base layer for
    :func:`~samora.run.run_config.load_run_config` (None when ``path`` is not a run folder).

    ``samora eval`` / ``analyze`` of a run thus use the run's tasks, template, source, max_length,
    evaluation settings, model and seed unless the user sets them. The layer's ``output_dir`` is
    the folder itself (wherever it is now); ``compare`` (a grid cell's) and ``train.resume`` say
    how the run was trained, not how to evaluate it, and are left out, as are the adapter's ``tasks``
    and ``base_model`` a grid cell's saved adapter section holds (they come from ``data.tasks`` and
    ``model.name``). A run folder (with ``adapter/``) without its ``config.yaml`` is refused: its
    tasks and settings would be guesses.
    """
    if path is None or not (Path(path) / ADAPTER_FOLDER).is_dir():
        return None
    if not (Path(path) / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{path} is a run folder without its {CONFIG_FILE}, so the tasks, template, data source and "
            f"evaluation settings of its run are unknown. Restore {Path(path) / CONFIG_FILE}, or pass the "
            f"adapter folder {Path(path) / ADAPTER_FOLDER} with the settings (data.tasks=..., --config) and "
            "output_dir=... for the results"
        )
    try:
        saved = yaml.safe_load((Path(path) / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{Path(path) / CONFIG_FILE} cannot be read ({err}); pass the adapter folder "
            f"{Path(path) / ADAPTER_FOLDER} with --config/--preset settings instead"
        ) from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{Path(path) / CONFIG_FILE} is not a run configuration (a mapping of sections)")
    saved.pop("compare", None)
    for section, key in (("train", "resume"), ("adapter", "tasks"), ("adapter", "base_model")):
        if isinstance(saved.get(section), dict):
            saved[section].pop(key, None)
    return {**saved, "output_dir": str(path)}


def new_results_folder(parent: str | os.PathLike, stem: str, *, numbered_first: bool) -> Path:
    """Create and return a new folder for one evaluation or analysis: ``parent/stem-NNN`` numbered
    one past the highest there (``parent/stem`` itself first unless ``numbered_first``; it counts as
    number 1). Never an existing folder, so no result overwrites an earlier one, even when two
    processes start at once (``mkdir`` claims the name)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    taken = [
        1 if p.name == stem else int(p.name[len(stem) + 1 :])
        for p in parent.iterdir()
        if p.name == stem or (p.name.startswith(f"{stem}-") and p.name[len(stem) + 1 :].isdigit())
    ]
    number = max(taken, default=0) + 1
    while True:
        folder = parent / (stem if number == 1 and not numbered_first else f"{stem}-{number:03d}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            number += 1


def _trained_a_step(run_dir: Path) -> bool:
    """Whether the unfinished run in ``run_dir`` trained at least one step: it logged one
    (``history.jsonl``) or wrote a checkpoint. A run that failed at or after loading its model (a wrong
    ``model.name``, ``target_modules`` that match nothing, a model family it cannot train) has neither,
    so the corrected command starts over instead of being refused as another configuration."""
    adapter = run_dir / ADAPTER_FOLDER
    checkpoints = adapter.is_dir() and any(p.name.startswith("checkpoint-") for p in adapter.iterdir())
    history = run_dir / "history.jsonl"
    return checkpoints or (history.is_file() and history.stat().st_size > 0)


def _is_temporary(path: Path) -> bool:
    """A file being written (``.config.yaml.tmp``): another process may be creating this run right now."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def config_differences(saved: dict, current: dict, prefix: tuple[str, ...] = ()) -> list[str]:
    """``"key: saved -> current"`` for every dotted key whose value differs (keys in NOT_COMPARED aside)."""
    differences = []
    for key in sorted(set(saved) | set(current)):
        path = (*prefix, key)
        if path in NOT_COMPARED:
            continue
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences.extend(config_differences(old, new, path))
        elif old != new:
            differences.append(f"{'.'.join(path)}: {old!r} in the folder, {new!r} now")
    return differences


def _read_saved_config(run_dir: Path) -> dict:
    try:
        saved = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{run_dir / CONFIG_FILE} cannot be read ({err}); pass --overwrite to discard the "
            "folder's run, or choose another output_dir"
        ) from None
    try:
        return effective_values(config_from_dict(saved))
    except ConfigError as err:
        raise ConfigError(
            f"{run_dir / CONFIG_FILE} is not a valid run configuration ({err}); pass --overwrite "
            "to discard the folder's run, or choose another output_dir"
        ) from None
