"""Deprecated alias of :mod:`samora.evaluation.lm_eval_model` (lm-eval model ``samora``); gone next release.

Importing it still registers the model with lm-eval, with a FutureWarning: import
``samora.evaluation.lm_eval_model`` instead.
"""

import warnings

from samora.evaluation.lm_eval_model import SamoraLM, cli

__all__ = ["SamoraLM", "cli"]

warnings.warn(
    "samora.lm_eval_model moved to samora.evaluation.lm_eval_model; import that instead",
    FutureWarning,  # shown by default: the users of the old name are end users
    stacklevel=2,
)
