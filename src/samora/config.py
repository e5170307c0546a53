"""Configuration shared by every adapter method.

Each method subclasses :class:`AdapterConfig` (or :class:`MixtureConfig` when it has experts) in its
own module under :mod:`samora.methods`, adds its hyperparameters as dataclass fields, and declares
how it uses the task id through three class attributes (not saved, they describe the method):

- ``uses_task``: the update depends on the per-example task id;
- ``requires_task``: the method cannot run without a task id (no route for an unseen task);
- ``merge_kind``: ``"static"`` (foldable into W), ``"per_task"`` (foldable once a task is fixed) or
  ``"token"`` (routed per token: never foldable into fixed weights);
- ``card``: a :class:`MethodCard`, the method's row in the generated table ``docs/methods.md``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class MethodCard:
    """What a method says about itself in ``docs/methods.md`` (see :mod:`samora.method_docs`).

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

    r: int = 8
    target_modules: list[str] | str = field(default_factory=lambda: list(DEFAULT_TARGETS))
    tasks: list[str] = field(default_factory=list)
    dropout: float = 0.05
    base_model: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)
        _check(not isinstance(self.tasks, str),
               f"tasks must be a list of task names, got the string {self.tasks!r}; write tasks=[{self.tasks!r}]")
        self.tasks = list(self.tasks)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field to change when a value is out of range."""
        for item in dataclasses.fields(self):  # alpha, dropout, temperatures, loss weights of every method
            value = getattr(self, item.name)
            _check(not isinstance(value, float) or math.isfinite(value),
                   f"{item.name} must be a finite number, got {value!r}")
        alpha = getattr(self, "alpha", None)
        _check(alpha is None or (isinstance(alpha, (int, float)) and alpha > 0),
               f"alpha (the update's scale numerator, alpha / r) must be > 0, got {alpha!r}")
        _check(isinstance(self.r, int) and self.r >= 1, f"r must be a positive int, got {self.r!r}")
        _check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.target_modules, str):
            try:
                re.compile(self.target_modules)
            except re.error as err:
                raise ValueError(f"target_modules is not a valid regular expression: {err}") from err
        else:
            _check(
                len(self.target_modules) > 0 and all(isinstance(t, str) for t in self.target_modules),
                "target_modules must be a non-empty list of module names or suffixes, or a regex string",
            )
        _check(all(isinstance(t, str) and t for t in self.tasks), "tasks must be non-empty strings")
        dupes = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        _check(not dupes, f"tasks must be unique; repeated: {dupes}")
        if self.requires_task:
            _check(
                len(self.tasks) > 0,
                f"method '{self.method}' routes by task: give tasks=[...] (the task names in id order)",
            )

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AdapterConfig:
        """Build this config from a dict, rejecting keys it does not know (naming the valid ones)."""
        values = {k: v for k, v in values.items() if k != "method"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"{cls.__name__} has no field(s) {unknown}; valid fields: {sorted(known)}"
            )
        return cls(**values)


@dataclass
class MixtureConfig(AdapterConfig):
    """An adapter with several experts.

    Attributes:
        num_experts: number of experts N (the paper uses 3).
    """

    num_experts: int = 3

    def validate(self) -> None:
        super().validate()
        _check(
            isinstance(self.num_experts, int) and self.num_experts >= 1,
            f"num_experts must be a positive int, got {self.num_experts!r}",
        )


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
