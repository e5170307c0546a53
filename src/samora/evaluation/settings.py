"""The evaluation settings a user chooses, defined once: the ``eval`` section of a run configuration
(:class:`samora.run.sections.EvalSection`) and the keywords of :func:`samora.evaluation.evaluate`
(:class:`samora.evaluation.EvaluationOptions`) both extend :class:`EvaluationSettings`, so their names,
defaults and rules (:func:`samora.config.setting`, checked by :class:`samora.config.Rule` as the method
configs' fields are) cannot drift apart. It imports only :mod:`samora.config`: the command line reads it
before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from samora.config import setting

PROTOCOLS = ("loglik", "generate")


@dataclass(frozen=True)
class EvaluationSettings:
    """protocol: ``loglik`` ranks choices by log-likelihood; ``generate`` decodes ``max_new_tokens``
    tokens (greedy, or ``num_beams`` beams) and extracts the answer. split: ``eval`` (each task's
    standard evaluation split) or a split name. limit: examples per task (None: the whole split).
    batch_size: requests per forward pass."""

    protocol: str = setting("loglik", choices=PROTOCOLS)
    split: str = "eval"
    limit: int | None = setting(None, gt=0)
    batch_size: int = setting(16, gt=0)
    num_beams: int = setting(1, ge=1)
    max_new_tokens: int = setting(32, gt=0)
