"""What the installed transformers declares for training, read from its source files without importing
them: ``transformers.training_args`` and ``transformers.trainer_utils`` import torch and the Trainer's
utilities (seconds), and the command line must refuse a bad ``train.*`` key or scheduler name before
that. The files are those of the installed version, so the answers follow it (a test compares them with
the imported classes).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import typing
from pathlib import Path
from typing import Any

# the names an annotation of TrainingArguments may use that are plain types (anything else: not plain)
ANNOTATION_NAMES = {
    "Any": Any,
    "Optional": typing.Optional,
    "Union": typing.Union,
    "None": None,
    **{kind.__name__: kind for kind in (bool, int, float, str, list, dict)},
}


@functools.cache
def _class_body(module: str, name: str) -> list[ast.stmt]:
    """The statements of class ``name`` in ``transformers/<module>.py`` (found without importing transformers)."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or spec.origin is None:
        raise ImportError("transformers is not installed: pip install transformers")
    path = Path(spec.origin).parent / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = next((node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name), None)
    if found is None:
        raise ImportError(f"{path} defines no class {name}: this transformers is not one samora supports")
    return found.body


@functools.cache
def scheduler_types() -> tuple[str, ...]:
    """The values of ``transformers.trainer_utils.SchedulerType`` (``"linear"``, ``"cosine"``...)."""
    return tuple(
        node.value.value
        for node in _class_body("trainer_utils", "SchedulerType")
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    )


@functools.cache
def training_argument_hints() -> dict[str, Any]:
    """Field name -> annotation of every ``transformers.TrainingArguments`` field a caller may set (those
    with ``init=False`` left out); an annotation naming a type other than the plain ones (an enum, a
    config class) is given as None."""
    hints = {}
    for node in _class_body("training_args", "TrainingArguments"):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and _in_init(node.value):
            hints[node.target.id] = _annotation(node.annotation)
    return hints


def _in_init(value: ast.expr | None) -> bool:
    """Whether a field's default (``field(init=False, ...)`` or not) leaves it a keyword of ``__init__``."""
    keywords = value.keywords if isinstance(value, ast.Call) else []
    return not any(k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False for k in keywords)


def _annotation(node: ast.expr) -> Any:
    """The annotation's typing object when it names only plain types, else None."""
    try:
        return eval(compile(ast.Expression(node), "<annotation>", "eval"), {"__builtins__": {}}, ANNOTATION_NAMES)
    except (NameError, TypeError, AttributeError):
        return None
