"""Training on the Hugging Face Trainer: regularisers counted once per step, task ids, router
statistics in the logs, adapter-only checkpoints that resume exactly.

``train(model, tokenizer, dataset, output_dir=...)`` is the one-call entry point (its settings:
:class:`TrainSettings`, or the same names as keyword arguments);
:class:`SamoraTrainer` is the Trainer subclass it uses, for users who build their own Trainer.
"""

from samora.persistence import load_adapter_weights
from samora.training.callbacks import AfterOptimizerStep, SamoraProgressCallback, StepLines
from samora.training.checkpoints import last_complete_checkpoint
from samora.training.divergence import NONFINITE_ACTIONS, NonFiniteGuard, TrainingDiverged
from samora.training.history import HistoryFile, read_history
from samora.training.train import TrainResult, TrainSettings, train
from samora.training.trainer import SamoraTrainer

__all__ = [
    "AfterOptimizerStep",
    "HistoryFile",
    "NONFINITE_ACTIONS",
    "NonFiniteGuard",
    "SamoraProgressCallback",
    "SamoraTrainer",
    "StepLines",
    "TrainResult",
    "TrainSettings",
    "TrainingDiverged",
    "last_complete_checkpoint",
    "load_adapter_weights",
    "read_history",
    "train",
]
