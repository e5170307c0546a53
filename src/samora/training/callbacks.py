"""Trainer callbacks: the adapter's once-per-step update, a progress bar with loss and tokens/s, and
one compact log line per logging step."""

from __future__ import annotations

import logging
import time

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from samora.inject import adapter_of

logger = logging.getLogger(__name__)


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


class StepLines(TrainerCallback):
    """One INFO line per logging step on the ``samora.training.callbacks`` logger (main process), in
    place of the Trainer's bar or dict print; the full entry goes to the history file and loggers:

    ``step 10/25 | loss 2.134 | lr 9.1e-04 | grad 1.42 | 1,234 tok/s | ETA 1m05s``

    ETA = (time since this call's first step) / (steps done in this call) * (steps left).
    """

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._first_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._started, self._first_step = time.perf_counter(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "loss" in logs:
            done = state.global_step - self._first_step
            eta = (
                (time.perf_counter() - self._started) / done * (state.max_steps - state.global_step) if done else None
            )
            logger.info(step_line(state.global_step, state.max_steps, logs, eta))
        elif "train_runtime" in logs:
            skipped = logs.get("nonfinite_skipped_steps")
            logger.info(
                "trained to step %d in %s, mean loss %.4g%s",
                state.global_step,
                duration(logs["train_runtime"]),
                logs.get("train_loss", float("nan")),
                f" over the trained steps ({skipped} skipped: non-finite)" if skipped else "",
            )
        else:  # evaluation: eval_loss and the like
            values = " | ".join(f"{k} {v:.4g}" for k, v in logs.items() if k.startswith("eval_") and _is_number(v))
            if values:
                logger.info("step %d/%d | %s", state.global_step, state.max_steps, values)


def step_line(step: int, max_steps: int, logs: dict, eta_s: float | None) -> str:
    """``step 10/25 | loss 2.134 | lr 9.1e-04 | grad 1.42 | 1,234 tok/s | ETA 1m05s`` (parts absent from
    ``logs`` are left out)."""
    parts = [f"step {step}/{max_steps}", f"loss {logs['loss']:.4g}"]
    if _is_number(logs.get("learning_rate")):
        parts.append(f"lr {logs['learning_rate']:.1e}")
    if _is_number(logs.get("grad_norm")):
        parts.append(f"grad {logs['grad_norm']:.3g}")
    if _is_number(logs.get("tokens_per_second")):
        parts.append(f"{logs['tokens_per_second']:,.0f} tok/s")
    if eta_s is not None:
        parts.append(f"ETA {duration(eta_s)}")
    return " | ".join(parts)


def duration(seconds: float) -> str:
    """``42s``, ``1m05s``, ``2h03m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
