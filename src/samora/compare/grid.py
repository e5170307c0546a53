"""``samora compare``: train and evaluate a grid of methods x seeds, resumable cell by cell.

```
output_dir/
  grid.yaml          the configuration the comparison started with (a rerun must agree with it)
  cells/
    base/            the base model, evaluated once (compare.baseline)
    <method>-seed<s>/
      config.yaml    the cell's configuration; adapter/: the trained adapter
      results.json   evaluation results (per task, with intervals); samples.jsonl: per example
      cell.json      parameter counts (requested, matched, budget), training summary, wall time
      done.json      the completion marker, written last; a cell without it is redone from scratch
  comparison.json, comparison.md, comparison.png
```

Every cell trains on the same stream (built once with ``train.seed``), for the same steps and
schedule, and is evaluated on the same examples (drawn with ``train.seed``); the cell's seed sets
the adapter's initialisation and the data order.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import yaml

from samora.compare.spec import (
    MethodSpec,
    check_compare_section,
    compare_specs,
    parse_method_spec,
    reference_and_budget,
    spec_adapter_config,
)
from samora.files import write_text_atomic
from samora.methods.registry import config_from_dict
from samora.run.folder_lock import run_folder_lock
from samora.run.pipeline import (
    DEFAULT_MODEL,
    build_stream,
    check_task_data,
    evaluate_model,
    load_base_model,
    record_tasks,
    resolve_run_tasks,
    save_config,
    train_adapter,
    warn_if_tasks_changed,
)
from samora.run.run_config import ConfigError, RunConfig

logger = logging.getLogger(__name__)

MARKER = "done.json"
BUDGET_TOLERANCE = 0.10  # a matched count within 10% of the reference's counts as matched
# Keys a rerun may change: more or fewer cells, and what only the comparison of the cells reads (its
# resamples, metric, reference and extra tests; the budget a reference implies is checked on its own).
GRID_KEYS_FREE = (
    "output_dir",
    "compare.methods",
    "compare.seeds",
    "compare.bootstrap_samples",
    "compare.reference",
    "compare.also_against",
    "compare.metric",
)


def run_compare(config: RunConfig, max_cells: int | None = None) -> dict[str, Any]:
    """Run (or resume) the cells of ``config.compare`` and write the comparison; return it.

    Cells run seed by seed (every method's first seed before any method's second), so a grid run
    in parts has every row before it has a second seed of any. ``max_cells``: train at most this
    many unfinished cells in this call, then write the comparison of the cells finished so far.
    The call holds ``output_dir``'s lock (:mod:`samora.run.folder_lock`, the one ``samora train``
    takes): a second compare (or train) on the same folder is refused while this one runs, instead
    of training the same cells twice; a dead process's lock is taken over with a message.
    """
    if not config.compare.methods:
        raise ConfigError(
            "compare.methods is empty: list the methods to compare, e.g. "
            "compare.methods=[samora,lora] (or use a comparison preset: samora compare --preset demo)"
        )
    check_compare_section(config)
    with run_folder_lock(config.output_dir):
        return _run_grid(config, max_cells)


def _run_grid(config: RunConfig, max_cells: int | None) -> dict[str, Any]:
    from samora.compare.summary import write_comparison

    output = Path(config.output_dir)
    tasks = resolve_run_tasks(config)
    check_task_data(config, tasks, ["train", config.eval.split])
    check_grid_config(config, output)
    warn_if_tasks_changed(tasks, str(output))  # cells finished on other data would mix in one table
    record_tasks(tasks, output)
    specs, reference, budget_spec = compare_specs(config)
    model, tokenizer = load_base_model(config.model.name or DEFAULT_MODEL, config.model.dtype, config.model)
    plan = budget_plan(model, config, specs, budget_spec, tasks)
    if config.compare.baseline:
        run_cell(output / "cells" / "base", {"kind": "base"}, partial(_evaluate_base, model, tokenizer, config, tasks))
    del model  # each cell loads a fresh copy; do not hold two base models (GPU memory) while training
    stream, trained = None, 0
    for seed in config.compare.seeds:
        for spec in specs:
            cell = output / "cells" / spec.cell_name(seed)
            identity = {"kind": "adapter", "spec": spec.label, "seed": seed, "adapter": plan[spec.label]["config"]}
            if finished_cell(cell, identity):
                continue
            if max_cells is not None and trained >= max_cells:
                logger.info(f"stopping after {trained} cell(s) (--max-cells); rerun to continue")
                return write_comparison(config, output, specs, reference, plan)
            stream = stream if stream is not None else build_stream(config, tokenizer, tasks)
            run_cell(cell, identity, partial(_train_cell, config, spec, seed, plan[spec.label], tasks, stream))
            trained += 1
    return write_comparison(config, output, specs, reference, plan)


def check_grid_config(config: RunConfig, output: Path) -> None:
    """Record the configuration on the first run; on a rerun refuse one that changed incompatibly.

    Only :data:`GRID_KEYS_FREE` may differ: ``compare.methods`` / ``compare.seeds`` (more or fewer
    cells), ``output_dir``, and the keys only the comparison reads (so a finished grid is summarised
    anew with, e.g., ``compare.bootstrap_samples=20000`` without retraining); anything else would mix
    cells trained or evaluated differently in one table. The budget spec is compared as it resolves
    (unset: the reference's), so a new reference that would move the budget is refused. While no
    cell has finished there is nothing to protect, and the new configuration replaces the recorded one.
    """
    current = _with_resolved_budget(_flat(config.to_dict()))
    path = output / "grid.yaml"
    if path.is_file() and any(output.glob(f"cells/*/{MARKER}")):
        # a key the recorded file lacks (a field added to samora since) had its default value then
        recorded = yaml.safe_load(path.read_text())
        stored = _with_resolved_budget({**_flat(RunConfig().to_dict()), **_flat(recorded)})
        changed = sorted(
            key
            for key in set(current) | set(stored)
            if key not in GRID_KEYS_FREE and current.get(key) != stored.get(key)
        )
        if changed:
            details = "; ".join(f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in changed)
            if "compare.budget" in changed:
                details += " (compare.budget as resolved: unset, it is compare.reference's spec)"
            raise ConfigError(
                f"{output} holds a comparison run with another configuration ({details}). Rerun "
                "with the original settings to resume it, or choose a new output_dir=..."
            )
        return
    save_config(config, output, path.name)


def budget_plan(
    model, config: RunConfig, specs: list[MethodSpec], reference: MethodSpec, tasks: list[str]
) -> dict[str, dict[str, Any]]:
    """Per spec: the adapter config it trains with and its parameter counts against the budget
    ``reference`` spec's (``compare.budget``).

    ``requested``: the spec's count as written; ``matched``: after ``samora.match_parameter_budget``
    on ``compare.match_size`` (unless the spec sets that field itself, or ``match_budget`` is off).
    """
    from samora.accounting import adapter_parameter_count, match_parameter_budget

    section = config.compare
    reference_config = spec_adapter_config(config, reference, tasks)
    budget = adapter_parameter_count(model, reference_config)
    plan = {}
    for spec in specs:
        adapter = spec_adapter_config(config, spec, tasks)
        requested = adapter_parameter_count(model, adapter)
        matched_by = None
        if section.match_budget and spec != reference and section.match_size not in spec.overrides:
            adapter = match_parameter_budget(model, adapter, budget, size=section.match_size).config
            matched_by = section.match_size
        count = adapter_parameter_count(model, adapter)
        plan[spec.label] = {
            "config": adapter.to_dict(),
            "requested": requested,
            "matched": count,
            "budget": budget,
            "relative_gap": (count - budget) / budget,
            "within_10_percent": abs(count - budget) <= BUDGET_TOLERANCE * budget,
            "matched_by": matched_by,
            "budget_source": spec == reference,
        }
        logger.info(
            f"{spec.label}: {requested:,} trainable parameters as written, {count:,} as trained "
            f"({plan[spec.label]['relative_gap']:+.1%} vs the budget of {reference.label}, {budget:,})"
        )
    return plan


def finished_cell(cell: Path, identity: dict[str, Any]) -> bool:
    """True for a cell finished with this identity; refuse one finished with another identity (its
    folder belongs to another configuration); False for an unfinished or absent cell."""
    if _is_done(cell, identity):
        logger.info(f"{cell.name}: finished earlier, skipped")
        return True
    if (cell / MARKER).is_file():
        raise ConfigError(
            f"{cell} was finished with another configuration than this run's "
            f"({json.loads((cell / MARKER).read_text())['identity']} vs {identity}); "
            "use a new output_dir=... or remove that cell"
        )
    return False


def run_cell(cell: Path, identity: dict[str, Any], work) -> None:
    """Skip a finished cell with the same identity; redo an unfinished one from scratch."""
    if finished_cell(cell, identity):
        return
    if cell.exists():
        logger.info(f"{cell.name}: unfinished (interrupted earlier), redone from scratch")
        shutil.rmtree(cell)
    cell.mkdir(parents=True)
    started = time.perf_counter()
    work(cell)
    write_text_atomic(
        cell / MARKER, json.dumps({"identity": identity, "wall_s": round(time.perf_counter() - started, 3)}, indent=2)
    )


def _is_done(cell: Path, identity: dict[str, Any]) -> bool:
    marker = cell / MARKER
    if not marker.is_file():
        return False
    return _with_current_fields(json.loads(marker.read_text())["identity"]) == _with_current_fields(identity)


def _with_current_fields(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` as JSON with its adapter config re-read by today's config class, so a field added
    since the cell finished (its default keeps the behaviour the cell ran with) reads as that default
    instead of making a finished cell look like another configuration's."""
    identity = json.loads(json.dumps(identity))
    if isinstance(identity.get("adapter"), dict):
        identity["adapter"] = config_from_dict(identity["adapter"]).to_dict()
    return identity


def _evaluate_base(model, tokenizer, config: RunConfig, tasks: list[str], cell: Path) -> None:
    logger.info("evaluating the base model")
    results = evaluate_model(model, tokenizer, config, tasks, cell / "samples.jsonl")
    write_text_atomic(cell / "results.json", json.dumps(results, indent=2))


def _train_cell(
    config: RunConfig, spec: MethodSpec, seed: int, budget: dict[str, Any], tasks: list[str], stream, cell: Path
) -> None:
    """Load a fresh base model, adapt it as planned, train with ``seed``, evaluate, write the cell."""
    import samora
    from samora.methods import get_method

    logger.info(f"cell {cell.name}: training {spec.label} with seed {seed}")
    save_config(dataclasses.replace(config, adapter=dict(budget["config"]), output_dir=str(cell)), cell)
    config_cls, _ = get_method(spec.method)
    adapter = config_cls.from_dict(budget["config"])
    model, tokenizer = load_base_model(config.model.name or DEFAULT_MODEL, config.model.dtype, config.model)
    torch.manual_seed(seed)
    model = samora.get_model(model, adapter)
    started = time.perf_counter()
    _, summary = train_adapter(model, tokenizer, stream, config, cell / "adapter", seed=seed, run_dir=cell)
    train_s = time.perf_counter() - started
    results = evaluate_model(model, tokenizer, config, tasks, cell / "samples.jsonl")  # examples: train.seed
    write_text_atomic(cell / "results.json", json.dumps(results, indent=2))
    record = {
        "spec": spec.label,
        "seed": seed,
        "parameters": budget,
        "train": summary,
        "train_wall_s": round(train_s, 3),
        "eval_wall_s": results["duration_s"],
    }
    write_text_atomic(cell / "cell.json", json.dumps(record, indent=2, default=str))


def _with_resolved_budget(flat: dict[str, Any]) -> dict[str, Any]:
    """``compare.budget`` as the label of the spec whose count the cells are matched to
    (:func:`samora.compare.spec.reference_and_budget`), and None when ``compare.match_budget`` is off
    or no method is listed (then no cell depends on it)."""
    methods = flat.get("compare.methods") or []
    resolved = None
    if methods and flat.get("compare.match_budget"):
        _, budget = reference_and_budget(methods, flat.get("compare.reference"), flat.get("compare.budget"))
        resolved = parse_method_spec(budget).label
    return {**flat, "compare.budget": resolved}


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix.rstrip("."): values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and key != "adapter":
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
