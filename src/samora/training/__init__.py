"""Training on the Hugging Face Trainer: regularisers counted once per step, task ids, router
statistics in the logs, adapter-only checkpoints that resume exactly.

``train(model, tokenizer, dataset, output_dir=...)`` is the one-call entry point (its settings:
:class:`TrainSettings`, or the same names as keyword arguments);
:class:`SamoraTrainer` is the Trainer subclass it uses, for users who build their own Trainer.

The names below are imported on first use (PEP 562 ``__getattr__``), so reading a submodule that needs
no torch (:mod:`samora.training.settings`, which the command line checks a configuration with) loads none.
"""

from __future__ import annotations

from samora.files import lazy_export

#: public name -> the module that defines it
_EXPORTS = {
    "load_adapter_weights": "samora.persistence",
    "AfterOptimizerStep": "samora.training.callbacks",
    "SamoraProgressCallback": "samora.training.callbacks",
    "StepLines": "samora.training.callbacks",
    "last_complete_checkpoint": "samora.training.checkpoints",
    "NonFiniteGuard": "samora.training.divergence",
    "TrainingDiverged": "samora.training.divergence",
    "HistoryFile": "samora.training.history",
    "read_history": "samora.training.history",
    "NONFINITE_ACTIONS": "samora.training.settings",
    "TrainingSettings": "samora.training.settings",
    "TrainResult": "samora.training.run_training",
    "TrainSettings": "samora.training.run_training",
    "train": "samora.training.run_training",
    "SamoraTrainer": "samora.training.trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    return lazy_export(__name__, _EXPORTS, globals(), name)
