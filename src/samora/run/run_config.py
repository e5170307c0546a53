"""One typed configuration for ``samora train | eval | analyze``: YAML file + ``key=value`` overrides.

```yaml
model: {name: smollm2-135m-instruct, dtype: float32}
adapter: {method: samora, r: 8, num_experts: 3}      # any field of the method's config class
data: {tasks: commonsense, per_task_cap: 200, max_length: 256}
train: {max_steps: 60, learning_rate: 2.0e-4, per_device_train_batch_size: 8}
eval: {protocol: loglik, limit: 25}
output_dir: runs/demo
```

Command-line overrides use dotted keys: ``samora train config.yaml train.learning_rate=3e-4
adapter.method=lora``. Values are parsed as YAML scalars (``3e-4``, ``true``, ``[a, b]``). Every key
is checked before anything runs, by the rules its section's fields declare (:mod:`samora.config.rules`):
an unknown key or a wrong type is an error that names the key and lists the valid ones. The checks
that need no library come first (:func:`load_run_config`), so such an error prints before torch loads.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import yaml

from samora.config import ConfigError, build_section, field_rules
from samora.run.config_checks import check_data, check_plain_values, check_values
from samora.run.sections import RunConfig, TrainSection

logger = logging.getLogger(__name__)
PRESETS_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_run_config(
    path: str | None = None, overrides: list[str] = (), preset: str | None = None, base: dict[str, Any] | None = None
) -> RunConfig:
    """Build a :class:`RunConfig` from layers, each over the ones before: ``base`` (e.g. a run
    folder's saved ``config.yaml``, see :func:`samora.run.run_folder.saved_run_values`), the preset, the
    YAML file, then the ``key=value`` overrides. A layer changes only the keys it sets.

    Checked in order of cost: keys, types and declared rules (no library), the tasks and templates
    (the data registries: no torch, no ``datasets``), then the adapter section against the method's
    config class and what only the installed libraries can check (torch loads)."""
    config = _typed_config(merged_layers(path, overrides, preset, base))
    check_plain_values(config)
    check_data(config)
    config.adapter = _coerce_adapter(config.adapter)
    check_values(config)
    return config


def merged_layers(
    path: str | None = None, overrides: list[str] = (), preset: str | None = None, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The raw values of the layers of :func:`load_run_config`, merged (no defaults, nothing checked):
    without ``base``, exactly what the user set."""
    values: dict[str, Any] = copy.deepcopy(base) if base else {}
    if preset is not None:
        if preset not in preset_names():
            raise ConfigError(f"unknown preset {preset!r}; presets: {preset_names()}")
        _merge_layer(values, _read_yaml(PRESETS_DIR / f"{preset}.yaml"))
    if path is not None:
        _merge_layer(values, _read_yaml(Path(path)))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. train.learning_rate=3e-4)")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({err}); quote it") from None
        _merge_layer(values, _nest(key.strip().split("."), value))
    return values


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (model, adapter, data, train, eval)")
    return loaded


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    return {keys[0]: _nest(keys[1:], value) if len(keys) > 1 else value}


def _merge_layer(values: dict[str, Any], layer: dict[str, Any]) -> None:
    """Merge a later layer (file or override) over earlier ones: it changes only the keys it sets.

    An ``adapter`` section naming another method keeps the earlier adapter keys that the new
    method also has (``r``, ``target_modules``, ``dropout``...) and drops, with a warning naming
    them, the ones it lacks (e.g. SAMoRA's ``num_experts`` when switching to LoRA)."""
    adapter = layer.get("adapter")
    earlier = values.get("adapter")
    if isinstance(adapter, dict) and isinstance(earlier, dict) and "method" in adapter:
        values["adapter"] = _adapter_keys_for(adapter["method"], earlier)
    _merge(values, layer)


def _adapter_keys_for(method: Any, earlier: dict[str, Any]) -> dict[str, Any]:
    """The earlier adapter section's keys that ``method`` also has (all of them when the method is
    unchanged or unknown: an unknown one is refused later, naming the valid methods)."""
    if method == earlier.get("method", "samora"):
        return earlier
    fields = method_fields(method)
    if fields is None:
        return earlier
    dropped = sorted(key for key in earlier if key != "method" and key not in fields)
    if dropped:
        logger.warning(
            "adapter.method=%s: dropped %s, which %s has and %s does not (set them again if you meant to)",
            method,
            ", ".join(f"adapter.{key}" for key in dropped),
            earlier.get("method", "samora"),
            method,
        )
    return {key: value for key, value in earlier.items() if key not in dropped}


def method_fields(method: Any) -> set[str] | None:
    """The field names of ``method``'s config class (None for an unknown method)."""
    from samora.methods import METHODS

    if not isinstance(method, str) or method not in METHODS:
        return None
    return {f.name for f in dataclasses.fields(METHODS[method][0])}


def _merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _coerce_adapter(values: dict[str, Any]) -> dict[str, Any]:
    """The ``adapter`` section coerced like every other one, by the rules of the method's config fields."""
    from samora.methods import METHODS

    method = values.get("method", "samora")
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"adapter.method must be one of {sorted(METHODS)}, got {method!r}")
    if "tasks" in values:
        raise ConfigError("adapter.tasks is set from data.tasks (the task names in id order); set data.tasks instead")
    rules = field_rules(METHODS[method][0])
    coerced = {
        key: rules[key].coerce(f"adapter.{key}", value) if key in rules else value for key, value in values.items()
    }  # unknown keys: the method's from_dict names the valid ones
    return {"method": method, **coerced}  # the saved config.yaml always names its method


def _typed_config(values: dict[str, Any]) -> RunConfig:
    """A :class:`RunConfig` with every key and type checked, the ``adapter`` section left as given (its
    keys are the method's): no library is imported (``TrainingArguments`` fields are read from source)."""
    from samora.run.passthrough import check_training_arguments, gather_training_arguments

    config = build_section(RunConfig, gather_training_arguments(values, TrainSection), "")
    config.train.training_arguments = check_training_arguments(config.train.training_arguments, TrainSection)
    return config


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """A :class:`RunConfig` from a dict such as a run folder's saved ``config.yaml`` (types coerced)."""
    config = _typed_config(values)
    config.adapter = _coerce_adapter(config.adapter)
    return config


def effective_values(config: RunConfig) -> dict[str, Any]:
    """``config.to_dict()`` with the adapter section as the method's full config (defaults included),
    so two configurations that train the same adapter compare equal."""
    values = config.to_dict()
    adapter = config.adapter_config(["_validation_task"]).to_dict()
    values["adapter"] = {k: v for k, v in adapter.items() if k not in ("tasks", "base_model")}
    return values
