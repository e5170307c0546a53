"""Trainer callbacks: the adapter's once-per-step update and a progress bar with loss and tokens/s."""

from __future__ import annotations

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from samora.inject import adapter_of


class AfterOptimizerStep(TrainerCallback):
    """Calls ``model.samora_adapter.after_optimizer_step()`` right after every optimizer step.

    The Trainer fires ``on_optimizer_step`` once per step, after the last micro-batch of a gradient
    accumulation cycle, on every rank; gradient-checkpoint recomputation never triggers it. This is
    where non-gradient state that must change once per step lives (SMoRA's load-balancing bias).
    """

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        adapter_of(model).after_optimizer_step()


class SamoraProgressCallback(ProgressCallback):
    """The Trainer's tqdm bar (steps, elapsed, ETA) with the last logged loss and tokens/s beside it."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=logs, **kwargs)
        if self.training_bar is not None and logs and "loss" in logs:
            postfix = {"loss": f"{logs['loss']:.4g}"}
            if "tokens_per_second" in logs:
                postfix["tok/s"] = f"{logs['tokens_per_second']:.0f}"
            self.training_bar.set_postfix(postfix, refresh=False)
