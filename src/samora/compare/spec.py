"""Method specs of a comparison: ``lora``, ``samora(router=linear)``, ``samora(scaling=false, lambda_orth=0)``.

A spec is a registered method name, optionally followed by ``(field=value, ...)`` overrides of that
method's config fields; values are YAML scalars (``false``, ``0``, ``1.0e-3``, ``linear``). Its label
is the spec as written, normalised (no spaces), and names its cell folders.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from samora.config import ConfigError, check_section

if TYPE_CHECKING:
    from samora.run.run_config import RunConfig

_SPEC = re.compile(r"^\s*([A-Za-z][\w-]*)\s*(?:\((.*)\))?\s*$")
SHARED_FIELDS = ("r", "target_modules", "dropout")  # AdapterConfig fields every method shares


@dataclass(frozen=True)
class MethodSpec:
    """A method and the config overrides a comparison row trains with."""

    method: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.overrides:
            return self.method
        inner = ",".join(f"{key}={_scalar(value)}" for key, value in self.overrides.items())
        return f"{self.method}({inner})"

    @property
    def slug(self) -> str:
        """A folder name for the label: ``samora(router=linear)`` -> ``samora-router-linear``."""
        return re.sub(r"[^A-Za-z0-9_.]+", "-", self.label).strip("-")

    def cell_name(self, seed: int) -> str:
        """The folder of this row's cell for ``seed`` under ``<output>/cells``: ``samora-router-linear-seed41``."""
        return f"{self.slug}-seed{seed}"


def parse_method_spec(text: str) -> MethodSpec:
    """``"samora(router=linear, lambda_orth=0)"`` -> MethodSpec("samora", {router: linear, lambda_orth: 0})."""
    from samora.methods import METHODS

    match = _SPEC.match(str(text))
    if match is None:
        raise ConfigError(
            f"compare.methods: {text!r} is not a method spec; write a method name, optionally "
            "with overrides, e.g. lora, samora(router=linear), samora(scaling=false, lambda_orth=0)"
        )
    method, inner = match.group(1), match.group(2)
    if method not in METHODS:
        raise ConfigError(f"compare.methods: {text!r}: unknown method {method!r}; methods: {sorted(METHODS)}")
    overrides: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in (inner or "").split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"compare.methods: {text!r}: override {item!r} must look like field=value")
        overrides[key.strip()] = yaml.safe_load(raw.strip())
    return MethodSpec(method, overrides)


def spec_adapter_values(config: RunConfig, spec: MethodSpec) -> dict[str, Any]:
    """The adapter fields a spec trains with (before budget matching): the ``adapter`` section's
    shared fields, all of its fields when it names the same method, then the spec's overrides."""
    section = dict(config.adapter)
    same_method = section.get("method", "samora") == spec.method
    values = {k: v for k, v in section.items() if k != "method" and (same_method or k in SHARED_FIELDS)}
    return {**values, **spec.overrides}


def spec_adapter_config(config: RunConfig, spec: MethodSpec, tasks: list[str]):
    """The method's config object for ``spec`` (validated, with a message naming the spec)."""
    from samora.methods import get_method

    config_cls, _ = get_method(spec.method)
    try:
        return config_cls.from_dict({**spec_adapter_values(config, spec), "tasks": list(tasks)})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"compare.methods: {spec.label}: {err}") from None


def reference_and_budget(methods: list[str], reference: str | None, budget: str | None) -> tuple[str, str]:
    """The reference and budget spec texts as a comparison resolves them: an unset reference is the
    first method, an unset budget the reference."""
    reference = reference if reference is not None else methods[0]
    return reference, budget if budget is not None else reference


def compare_specs(config: RunConfig) -> tuple[list[MethodSpec], MethodSpec, MethodSpec]:
    """The parsed ``compare.methods``, the reference and the budget spec among them."""
    section = config.compare
    specs = [parse_method_spec(text) for text in section.methods]
    labels = [spec.label for spec in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"compare.methods lists a method twice: {labels}")
    chosen = []
    texts = reference_and_budget(section.methods, section.reference, section.budget)
    for key, text in zip(("reference", "budget"), texts, strict=True):
        spec = parse_method_spec(text)
        if spec.label not in labels:
            raise ConfigError(f"compare.{key} {text!r} must be one of compare.methods: {labels}")
        chosen.append(spec)
    return specs, chosen[0], chosen[1]


def check_compare_section(config: RunConfig) -> None:
    """Every check of the ``compare`` section that needs no model, each naming its key: the rules its
    fields declare (:class:`~samora.run.sections.CompareSection`: seeds, metric, bootstrap_samples),
    then those between its fields, the method registry and the other sections."""
    section = config.compare
    check_section(section, "compare.")
    if section.metric == "acc_norm" and config.eval.protocol != "loglik":
        raise ConfigError("compare.metric=acc_norm needs eval.protocol=loglik")
    for spec in map(parse_method_spec, section.methods):
        adapter = spec_adapter_config(config, spec, ["_validation_task"])
        if section.match_budget and section.match_size not in {f.name for f in dataclasses.fields(adapter)}:
            raise ConfigError(f"compare.match_size {section.match_size!r} is not a field of {spec.label}'s config")
    compare_specs(config)  # labels distinct, reference and budget among them
    labels = [parse_method_spec(text).label for text in section.methods]
    for text in section.also_against:
        if parse_method_spec(text).label not in labels:
            raise ConfigError(f"compare.also_against: {text!r} must be one of compare.methods: {labels}")


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
