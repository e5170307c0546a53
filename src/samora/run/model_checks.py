"""The configuration checks that need the loaded base model, run right after it loads and before the
run folder is written: ``adapter.target_modules`` must select linear layers, and ``adapter.r`` must
not exceed the width of any of them, and the training stream must hold targets to learn; and the
warning for an evaluation of tasks an adapter never saw."""

from __future__ import annotations

import logging

from samora.config import ConfigError

logger = logging.getLogger(__name__)


def check_adapter_fits(model, adapter_config) -> None:
    """:class:`ConfigError` when ``adapter.target_modules`` selects no linear layer of ``model`` (naming
    the layers it has), or when ``adapter.r`` exceeds ``min(d_in, d_out)`` of a selected layer: a rank
    above that adds parameters but not rank (``B A`` has rank at most ``min(d_in, d_out)``)."""
    from samora.inject import find_targets
    from samora.methods.base import linear_shape

    target = adapter_config.target_modules
    try:
        targets = find_targets(model, target)
    except ValueError as err:
        regex = (
            f" A string is a regular expression matched against whole module names: to name layers, "
            f"give a list, e.g. adapter.target_modules=[{target}]"
            if isinstance(target, str)
            else ""
        )
        raise ConfigError(f"adapter.target_modules: {err}.{regex}") from None
    rank = getattr(adapter_config, "r", None)
    widths = {name: min(linear_shape(module)[:2]) for name, module in targets.items()}
    name, narrowest = min(widths.items(), key=lambda item: item[1])
    if isinstance(rank, int) and rank > narrowest:
        raise ConfigError(
            f"adapter.r={rank} is larger than the layer {name} allows: min(d_in, d_out) = {narrowest}, the "
            f"highest rank an update of it can have; choose adapter.r <= {narrowest}"
        )
    _warn_if_larger_than_its_layers(model, adapter_config, targets)


def _warn_if_larger_than_its_layers(model, adapter_config, targets) -> None:
    """Warn when the adapter would train more parameters than the frozen layers it adapts hold (e.g.
    ``adapter.num_experts=512`` on 64-wide layers): legal, but no longer parameter-efficient, and
    usually a typo."""
    from samora.accounting import adapter_parameter_count

    adapter = adapter_parameter_count(model, adapter_config)
    adapted = sum(module.weight.numel() for module in targets.values())
    if adapter > adapted:
        sizes = {key: getattr(adapter_config, key) for key in ("r", "num_experts") if hasattr(adapter_config, key)}
        logger.warning(
            "the adapter (%s) trains %s parameters, %.1fx the %s frozen weights of the %d layers it adapts: "
            "check adapter.r and adapter.num_experts",
            ", ".join(f"{key}={value}" for key, value in sizes.items()),
            f"{adapter:,}",
            adapter / adapted,
            f"{adapted:,}",
            len(targets),
        )


def check_stream_has_targets(stream, max_length: int) -> None:
    """:class:`ConfigError` when ``data.max_length`` cut every training target away: the loss would be
    over no token (NaN), which looks like divergence."""
    if not any(any(label != -100 for label in example["labels"]) for example in stream):
        raise ConfigError(
            f"data.max_length={max_length} cuts every training target away (each prompt alone is at least "
            "that long), so there is nothing to learn; raise data.max_length (e.g. 256)"
        )


def warn_unseen_tasks(tasks: list[str], trained: list[str], adapter_dir: str) -> None:
    """Warn loudly when asked to score tasks the adapter was never trained on (``trained``: its tasks;
    empty for a PEFT LoRA folder, which records none): they go down its unseen-task route."""
    unseen = [task for task in tasks if trained and task not in trained]
    if unseen:
        logger.warning(
            "the adapter in %s was trained on %s and never saw %s: those are scored on its unseen-task route "
            "(not what it learned for them); leave data.tasks unset to score its own tasks",
            adapter_dir,
            trained,
            unseen,
        )
