"""Configuration shared by every adapter method.

Each method subclasses :class:`AdapterConfig` (or :class:`MixtureConfig` when it has experts, and
:class:`ScaledConfig` when its update is scaled by alpha / r) in its own module under
:mod:`samora.methods`, adds its hyperparameters as dataclass fields, and declares how it uses the
task id through class attributes (not saved, they describe the method):

- ``uses_task``: the update depends on the per-example task id;
- ``requires_task``: the method cannot run without a task id (no route for an unseen task);
- ``merge_kind``: ``"static"`` (foldable into W), ``"per_task"`` (foldable once a task is fixed) or
  ``"token"`` (routed per token: never foldable into fixed weights);
- ``card``: a :class:`MethodCard`, the method's row in the generated table ``docs/methods.md``.

**What a field accepts is declared once, on the field** (:mod:`samora.config.rules`, the one rule
system of every setting: method configs here, and the run configuration's sections). Its annotation
gives the type (int, float, bool, str, list, dict, optionally ``| None``) and :func:`setting` its
choices or bounds, e.g. ``temperature: float = setting(0.8, gt=0)`` or
``router: str = setting("semantic", choices=(...))``. :func:`validate_fields` checks every field of a
config against them (run on construction, before the method's own ``validate``, which keeps only the
rules between fields, such as ``top_k <= r``); :func:`field_rules` returns them, for anything else that
must accept the same values. A subclass that only changes a default (``r: int = 16``) keeps the rule
its base declared.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from samora.config.rules import (
    ConfigError,
    Rule,
    annotation_rule,
    build_section,
    check_section,
    field_rules,
    setting,
    validate_fields,
)

__all__ = [
    "DEFAULT_TARGETS",
    "AdapterConfig",
    "ConfigError",
    "MethodCard",
    "MixtureConfig",
    "Rule",
    "ScaledConfig",
    "annotation_rule",
    "build_section",
    "check_section",
    "field_rules",
    "setting",
    "task_embedding_size",
    "validate_fields",
]
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class MethodCard:
    """What a method says about itself in ``docs/methods.md`` (see :mod:`samora.run.method_docs`).

    Task use and mergeability are not repeated here: the table reads them from ``uses_task``,
    ``requires_task`` and ``merge_kind``, so they cannot disagree with the code.

    Attributes:
        title: display name and paper, e.g. ``"LoRA (Hu et al., 2021)"``.
        equation: the update added to W x, in plain text.
        router: what the mixture weights are computed from (``"none"`` without a router).
        init: how the parameters start (the adapted model must equal the base at init).
        parameters: trainable parameters per adapted module, in d_in, d_out, r, N, T...
    """

    title: str
    equation: str
    router: str
    init: str
    parameters: str


def task_embedding_size(default: int) -> Any:
    """The ``task_dim`` field of a method with a task embedding e_t: its size, a positive int."""
    return setting(default, ge=1)


@dataclass
class AdapterConfig:
    """Fields every method shares.

    Attributes:
        r: rank of the low-rank update (the paper's r; 8 in its scripts, 8..64 changes little).
        target_modules: which linear layers to adapt. A list matches a module whose full name equals
            an entry or ends with ``"." + entry`` (``["q_proj", "v_proj"]``); a string is a regular
            expression that must match the whole module name (``r".*layers\\.[0-3]\\..*proj"``).
            The default is the attention projections q/k/v/o, as in the paper.
        tasks: task names in id order; ``task_ids=`` may name these or give their indices. The order
            is saved with the adapter, so ids mean the same thing after loading.
        dropout: dropout on the adapter's input x (the frozen path never sees it); 0.05 in the paper.
        base_model: name or path of the base model, filled in by :func:`samora.get_model`.
    """

    method: ClassVar[str] = ""
    uses_task: ClassVar[bool] = False
    requires_task: ClassVar[bool] = False
    merge_kind: ClassVar[str] = "static"
    card: ClassVar[MethodCard | None] = None

    r: int = setting(8, ge=1)
    target_modules: list[str] | str = field(default_factory=lambda: list(DEFAULT_TARGETS))
    tasks: list[str] = field(default_factory=list)
    dropout: float = setting(0.05, ge=0.0, lt=1.0)
    base_model: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)
        if isinstance(self.tasks, str):
            raise ValueError(
                f"tasks must be a list of task names, got the string {self.tasks!r}; write tasks=[{self.tasks!r}]"
            )
        self.tasks = list(self.tasks)
        validate_fields(self)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field to change; the rules :func:`validate_fields` cannot
        express (a subclass adds the ones between its fields)."""
        if isinstance(self.target_modules, str):
            try:
                re.compile(self.target_modules)
            except re.error as err:
                raise ValueError(f"target_modules is not a valid regular expression: {err}") from err
        elif not self.target_modules or not all(isinstance(t, str) for t in self.target_modules):
            raise ValueError("target_modules must be a non-empty list of module names or suffixes, or a regex string")
        if not all(isinstance(t, str) and t for t in self.tasks):
            raise ValueError("tasks must be non-empty strings")
        dupes = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if dupes:
            raise ValueError(f"tasks must be unique; repeated: {dupes}")
        if self.requires_task and not self.tasks:
            raise ValueError(f"method '{self.method}' routes by task: give tasks=[...] (the task names in id order)")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AdapterConfig:
        """Build this config from a dict, rejecting keys it does not know (naming the valid ones)."""
        values = {k: v for k, v in values.items() if k != "method"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**values)


@dataclass
class MixtureConfig(AdapterConfig):
    """An adapter with several experts.

    Attributes:
        num_experts: number of experts N (the paper uses 3).
    """

    num_experts: int = setting(3, ge=1)


@dataclass
class ScaledConfig(AdapterConfig):
    """An adapter whose update is multiplied by ``scaling = alpha / r``.

    Attributes:
        alpha: scale numerator; the update is multiplied by ``alpha / r`` so that changing r does not
            change the effective learning rate much (16 with r = 8 in most public scripts).
    """

    alpha: float = setting(16.0, gt=0, meaning="the update's scale numerator, alpha / r")

    @property
    def scaling(self) -> float:
        """The factor on the update: ``alpha / r``."""
        return self.alpha / self.r
