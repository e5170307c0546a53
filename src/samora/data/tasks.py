"""The task registry: every benchmark task samora can train on and evaluate.

A task knows its canonical name and aliases, its benchmark and its task id there (its index in
:data:`BENCHMARKS`, an order that is recorded in every saved adapter and every result), the splits
that carry gold labels, its standard evaluation split, its metrics (the first one is primary), the
names of its labels when they are fixed, and its dataset on the Hugging Face hub.

How the splits are read lives in :mod:`samora.data.sources`; how examples are turned into text lives
in :mod:`samora.data.templates`.

Every task's examples are first read into *records*, whose fields are the same whatever the source:

=================================================  ==============================================
task                                               record fields (besides ``id`` and ``label``)
=================================================  ==============================================
arc_challenge, arc_easy, openbookqa, commonsense_qa  ``question``, ``options``
piqa                                               ``goal``, ``options`` (sol1, sol2)
social_iqa                                         ``context``, ``question``, ``options``
boolq                                              ``passage``, ``question`` (no trailing "?")
hellaswag                                          ``context`` ("<activity>: <ctx>"), ``options``
winogrande                                         ``sentence`` (with a "_" blank), ``options``
cola, sst2                                         ``sentence``
mrpc, rte                                          ``sentence1``, ``sentence2``
qqp                                                ``question1``, ``question2``
mnli                                               ``premise``, ``hypothesis``
qnli                                               ``question``, ``sentence``
=================================================  ==============================================

``label`` is the gold index: into ``options``, or into :attr:`Task.label_names` for tasks with a
fixed label set (BoolQ: 0 = true; GLUE: the label numbers of the GLUE release).

The registry is open: a user's task (an lm-eval task YAML, one task of a multi-task file; see
:mod:`samora.data.task_set`) is a :class:`Task` like the built-in ones, whose ``loader`` reads its
files and renders its documents, registered with :func:`register_task` and then found by
:func:`get_task` and :func:`resolve_tasks` by name like the 16 built-in tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    name: str
    benchmark: str
    aliases: tuple[str, ...]
    splits: tuple[str, ...]  # splits with gold labels, in canonical names
    eval_split: str  # the split results are reported on in this line of work
    metrics: tuple[str, ...]  # first one is the primary metric
    hub: tuple[str, str | None]  # (dataset id, config name) for datasets.load_dataset
    label_names: tuple[str, ...] | None = None  # None: options differ per example
    # How the task is scored, in lm-evaluation-harness's task-YAML vocabulary (the same for built-in
    # and users' tasks): "multiple_choice" (log-likelihood of each choice) or "generate_until" (free
    # text, scored by text metrics after the filters); metric_list entries are lm-eval's
    # ({"metric": "exact_match", "ignore_case": True, ...}; empty: one entry per name in ``metrics``),
    # filter_list entries lm-eval's ({"name": ..., "filter": [{"function": "regex", ...}, ...]}),
    # generation_kwargs lm-eval's (``until``, ``max_gen_toks``, ...).
    output_type: str = "multiple_choice"
    metric_list: tuple[dict, ...] = ()
    filter_list: tuple[dict, ...] = ()
    generation_kwargs: dict | None = None
    target_delimiter: str = " "
    # Where the examples come from: None for the built-in tasks, whose splits samora.data.sources
    # reads (the bundle, the hub, local files) and samora.data.templates renders; for a user's task,
    # its loader (samora.data.own_loader), which reads the task's files and renders its documents.
    loader: Any = None

    @property
    def task_id(self) -> int | None:
        """Index of the task in its benchmark's fixed order (:data:`BENCHMARKS`); ``None`` for a
        user's task (its id in a run is its position in the run's tasks)."""
        return BENCHMARKS[self.benchmark].index(self.name) if self.benchmark in BENCHMARKS else None

    @property
    def is_builtin(self) -> bool:
        return self.loader is None

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


_QA_SPLITS = ("train", "validation", "test")
_TRAIN_DEV = ("train", "validation")
_ENTAILMENT = ("entailment", "not_entailment")

_ALL_TASKS = (
    # Commonsense: evaluated on test for ARC and OBQA, on validation for the rest.
    Task(
        "arc_challenge",
        "commonsense",
        ("arc-c", "arcc", "ARC-Challenge"),
        _QA_SPLITS,
        "test",
        ("acc",),
        ("allenai/ai2_arc", "ARC-Challenge"),
    ),
    Task(
        "arc_easy",
        "commonsense",
        ("arc-e", "arce", "ARC-Easy"),
        _QA_SPLITS,
        "test",
        ("acc",),
        ("allenai/ai2_arc", "ARC-Easy"),
    ),
    Task(
        "openbookqa",
        "commonsense",
        ("obqa", "openbook_qa"),
        _QA_SPLITS,
        "test",
        ("acc",),
        ("allenai/openbookqa", "main"),
    ),
    Task("piqa", "commonsense", (), _TRAIN_DEV, "validation", ("acc",), ("ybisk/piqa", None)),
    Task(
        "social_iqa",
        "commonsense",
        ("siqa", "social_i_qa", "socialiqa"),
        _TRAIN_DEV,
        "validation",
        ("acc",),
        ("allenai/social_i_qa", None),
    ),
    Task(
        "boolq",
        "commonsense",
        (),
        _TRAIN_DEV,
        "validation",
        ("acc",),
        ("google/boolq", None),
        label_names=("true", "false"),
    ),
    Task("hellaswag", "commonsense", (), _TRAIN_DEV, "validation", ("acc",), ("Rowan/hellaswag", None)),
    Task(
        "winogrande",
        "commonsense",
        ("wino", "winogrande_xl"),
        _TRAIN_DEV,
        "validation",
        ("acc",),
        ("allenai/winogrande", "winogrande_xl"),
    ),
    Task(
        "commonsense_qa",
        "commonsense",
        ("csqa", "commonsenseqa"),
        _TRAIN_DEV,
        "validation",
        ("acc",),
        ("tau/commonsense_qa", None),
    ),
    # GLUE: trained on train, reported on validation (MNLI: matched).
    Task(
        "cola",
        "glue",
        (),
        _TRAIN_DEV,
        "validation",
        ("mcc", "acc"),
        ("nyu-mll/glue", "cola"),
        label_names=("unacceptable", "acceptable"),
    ),
    Task(
        "sst2",
        "glue",
        ("sst-2", "sst"),
        _TRAIN_DEV,
        "validation",
        ("acc",),
        ("nyu-mll/glue", "sst2"),
        label_names=("negative", "positive"),
    ),
    Task(
        "mrpc",
        "glue",
        (),
        _TRAIN_DEV,
        "validation",
        ("acc", "f1"),
        ("nyu-mll/glue", "mrpc"),
        label_names=("not_equivalent", "equivalent"),
    ),
    Task(
        "qqp",
        "glue",
        (),
        _TRAIN_DEV,
        "validation",
        ("acc", "f1"),
        ("nyu-mll/glue", "qqp"),
        label_names=("not_duplicate", "duplicate"),
    ),
    Task(
        "mnli",
        "glue",
        ("mnli_matched", "mnli-m", "multi_nli"),
        ("train", "validation_matched", "validation_mismatched"),
        "validation_matched",
        ("acc",),
        ("nyu-mll/glue", "mnli"),
        label_names=("entailment", "neutral", "contradiction"),
    ),
    Task("qnli", "glue", (), _TRAIN_DEV, "validation", ("acc",), ("nyu-mll/glue", "qnli"), label_names=_ENTAILMENT),
    Task("rte", "glue", (), _TRAIN_DEV, "validation", ("acc",), ("nyu-mll/glue", "rte"), label_names=_ENTAILMENT),
)

TASKS: dict[str, Task] = {task.name: task for task in _ALL_TASKS}

#: Benchmark name -> ordered task names. The order fixes each task's id and must never change:
#: commonsense follows the SAMoRA paper's table, GLUE the GLUE paper's.
BENCHMARKS: dict[str, list[str]] = {
    "commonsense": [
        "arc_challenge",
        "arc_easy",
        "openbookqa",
        "piqa",
        "social_iqa",
        "boolq",
        "hellaswag",
        "winogrande",
        "commonsense_qa",
    ],
    "glue": ["cola", "sst2", "mrpc", "qqp", "mnli", "qnli", "rte"],
}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


_LOOKUP: dict[str, str] = {}
for _task in _ALL_TASKS:
    for _name in (_task.name, *_task.aliases):
        _LOOKUP[_key(_name)] = _task.name


#: Users' tasks, registered by name (:func:`register_task`), in registration order.
_REGISTERED: dict[str, Task] = {}


def _valid_names() -> str:
    listing = "; ".join(
        f"{bench}: "
        + ", ".join(name + (f" ({'/'.join(TASKS[name].aliases)})" if TASKS[name].aliases else "") for name in names)
        for bench, names in BENCHMARKS.items()
    )
    own = f"; your registered tasks: {', '.join(_REGISTERED)}" if _REGISTERED else ""
    return (
        f"benchmarks: {', '.join(BENCHMARKS)}; tasks (aliases) - {listing}{own}; or the path of a task YAML "
        "(an lm-eval task, group or multi-task file)"
    )


def register_task(task: Task, replace: bool = False) -> Task:
    """Make ``task`` (a user's task, with a ``loader``) findable by :func:`get_task` under its name.

    A name (or alias) of a built-in task cannot be taken; a name another registered task holds is
    taken over only with ``replace`` (a later resolution of the run's tasks re-reads its files).
    """
    if task.loader is None:
        raise ValueError(f"task {task.name!r} has no loader; only a user's task (from a file) can be registered")
    if _key(task.name) in _LOOKUP:
        raise ValueError(
            f"{task.loader.origin}: task {task.name!r}: task: is the name of a built-in task "
            f"({_LOOKUP[_key(task.name)]}); rename your task (its `task:` key or its value in the task column)"
        )
    held = _REGISTERED.get(task.name)
    if held is not None and not replace and held.loader.origin != task.loader.origin:
        raise ValueError(
            f"two tasks are named {task.name!r}: one in {held.loader.origin}, one in {task.loader.origin}; "
            "rename one of them"
        )
    _REGISTERED[task.name] = task
    return task


def unregister_task(name: str) -> None:
    """Forget the registered task ``name`` (nothing happens when none is)."""
    _REGISTERED.pop(name, None)


def registered_tasks() -> dict[str, Task]:
    """The users' tasks registered so far, by name."""
    return dict(_REGISTERED)


def benchmark_tasks(benchmark: str) -> list[str]:
    """A benchmark's task names in task-id order (for users' tasks: those registered under it)."""
    if benchmark in BENCHMARKS:
        return list(BENCHMARKS[benchmark])
    return [name for name, task in _REGISTERED.items() if task.benchmark == benchmark]


def get_task(name_or_alias: str | Task) -> Task:
    """Return the :class:`Task` for a canonical name or an alias (case and '-'/'_' insensitive), or
    for the exact name of a registered user's task."""
    if isinstance(name_or_alias, Task):
        return name_or_alias
    if str(name_or_alias) in _REGISTERED:
        return _REGISTERED[str(name_or_alias)]
    canonical = _LOOKUP.get(_key(str(name_or_alias)))
    if canonical is None:
        raise ValueError(f"Unknown task {name_or_alias!r}. Valid names are {_valid_names()}.")
    return TASKS[canonical]


def resolve_tasks(spec: str | Task | list | tuple) -> list[str]:
    """Turn a benchmark name, a task name, a comma-separated string or a list into canonical names.

    >>> resolve_tasks("glue")[:3]
    ['cola', 'sst2', 'mrpc']
    >>> resolve_tasks(["ARC-C", "siqa"])
    ['arc_challenge', 'social_iqa']

    Benchmark names expand in place (``["commonsense", "rte"]`` is 10 tasks); a task named twice is
    an error, because task ids must be unambiguous.
    """
    if hasattr(spec, "names"):  # a resolved TaskSet (samora.data.task_set): its names, in id order
        return list(spec.names)
    if isinstance(spec, (str, Task)):
        items = [spec] if isinstance(spec, Task) else [p.strip() for p in spec.split(",") if p.strip()]
    else:
        items = list(spec)
    if not items:
        raise ValueError(f"No tasks given. Valid names are {_valid_names()}.")
    names: list[str] = []
    for item in items:
        if isinstance(item, str) and _key(item) in BENCHMARKS:
            names.extend(BENCHMARKS[_key(item)])
        else:
            names.append(get_task(item).name)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Task(s) {duplicates} were named more than once in {spec!r}; "
            "each task may appear once so that its task id is unambiguous."
        )
    return names


_SPLIT_ALIASES = {"dev": "validation", "val": "validation", "valid": "validation"}


def resolve_split(task: str | Task, split: str) -> str:
    """Canonical split name: ``"eval"`` is the task's evaluation split, ``"dev"`` is
    ``"validation"``, and MNLI's ``"validation"`` is ``"validation_matched"``."""
    task = get_task(task)
    name = _SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())
    if name == "eval":
        name = task.eval_split
    if name == "eval" and task.eval_split is None:
        raise ValueError(f"Task {task.name!r} has no evaluation split (set its validation_split or test_split).")
    if name == "validation" and "validation" not in task.splits and task.name == "mnli":
        name = "validation_matched"
    if name not in task.splits:
        origin = f" (defined in {task.loader.origin})" if task.loader is not None else ""
        raise ValueError(
            f"Task {task.name!r}{origin} has no labelled split {split!r}; valid splits are "
            f"{', '.join(task.splits) or 'none'} (or 'eval' for {task.eval_split!r})."
        )
    return name
