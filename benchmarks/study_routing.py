"""The routing study (issue #27 item 4) in one command: the grid, then every cell's routing on unseen
MMLU subjects, then the comparison of the routers (the paper's Fig. 5 and Fig. 3 at small scale).

    python benchmarks/study_routing.py                      # preset study-routing-cpu, 4 cells
    python benchmarks/study_routing.py --max-cells 1        # in parts; rerun the same command to go on

1. ``samora compare`` of the preset (SAMoRA with N = 8, semantic vs MLP router, 2 seeds) with
   ``output_dir`` = the results folder: cells in ``<output>/cells/<spec>-seed<S>/`` with their adapters,
   ``comparison.md/json/png`` on the commonsense tasks. Finished cells are kept (the grid resumes).
2. For every finished cell without ``unseen/unseen.json``: load its adapter and route
   ``--per-subject`` examples of each MMLU subject of ``--subjects`` (task id -1, the unseen-task
   route) into ``<cell>/unseen/`` (:func:`samora.analysis.routing_study.analyze_unseen`). An
   analysed cell is never analysed again.
3. Once every cell is analysed: ``routing.json``, ``routing.md``, ``fig5_expert_share.png`` and
   ``fig3_expert_pca.png`` in the results folder (:func:`summarize_routing_study`).

Extra ``key=value`` arguments override the preset as on the ``samora`` command line (e.g. the tiny
model of the tests: ``model.name=DIR train.max_steps=1``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = ROOT / "benchmarks" / "tasks" / "mmlu" / "mmlu_routing.yaml"
ROUTER_LABELS = {"samora": "semantic router", "samora(router=mlp)": "MLP router"}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="study-routing-cpu")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "study-routing-cpu"))
    parser.add_argument("--subjects", default=str(SUBJECTS), help="task YAML (a group) of the unseen tasks")
    parser.add_argument("--per-subject", type=int, default=100, help="examples routed per subject")
    parser.add_argument("--bootstrap-samples", type=int, default=2000)
    parser.add_argument("--max-cells", type=int, default=None, help="train at most this many cells in this call")
    parser.add_argument("overrides", nargs="*", help="key=value settings over the preset")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="[study-routing] %(message)s")
    from samora.compare import run_compare
    from samora.compare.grid import MARKER
    from samora.compare.spec import parse_method_spec
    from samora.data.task_set import resolve_task_set
    from samora.run.run_config import load_run_config

    output = Path(args.output)
    config = load_run_config(preset=args.preset, overrides=[*args.overrides, f"output_dir={output}"])
    subjects = resolve_task_set(args.subjects, check_splits=["eval"]).names  # a bad file stops before training
    run_compare(config, max_cells=args.max_cells)
    cells: dict[str, list[Path]] = {}
    for method in config.compare.methods:
        label = ROUTER_LABELS.get(method, method)
        cells[label] = []
        for seed in config.compare.seeds:
            cell = output / "cells" / parse_method_spec(method).cell_name(seed)
            if (cell / MARKER).is_file():
                cells[label].append(analyze_cell(config, cell, subjects, args))
    finished = sum(len(folders) for folders in cells.values())
    expected = len(config.compare.methods) * len(config.compare.seeds)
    if finished < expected:
        logging.info(f"{finished} of {expected} cells analysed; rerun the same command to go on")
        return 0
    from samora.analysis.routing_study import summarize_routing_study

    summarize_routing_study(cells, output, bootstrap_samples=args.bootstrap_samples)
    logging.info(f"routing summary: {output / 'routing.md'}")
    return 0


def analyze_cell(config, cell: Path, subjects: list[str], args: argparse.Namespace) -> Path:
    """The cell's ``unseen/`` folder, analysed now unless it already holds ``unseen.json``."""
    from samora.analysis.routing_study import UNSEEN_NAME, analyze_unseen, unseen_batches
    from samora.run.model_loading import load_adapted

    folder = cell / "unseen"
    if (folder / UNSEEN_NAME).is_file():
        return folder
    logging.info(f"{cell.name}: routing {args.per_subject} examples of each of {len(subjects)} unseen subjects")
    model, tokenizer, _ = load_adapted(cell / "adapter", config)
    batches, labels = unseen_batches(
        tokenizer, subjects, limit=args.per_subject, max_length=config.data.max_length, seed=config.train.seed
    )
    analyze_unseen(model, batches, labels, folder, bootstrap_samples=args.bootstrap_samples)
    return folder


if __name__ == "__main__":
    raise SystemExit(main())
