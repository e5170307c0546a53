"""Divergence is a failure: a non-finite loss or gradient stops training (or, if asked, skips the step).

The Trainer's default ``logging_nan_inf_filter`` logs a NaN step as the mean of the earlier ones and
trains on: the weights turn NaN, the run "succeeds", and argmax over NaN scores picks the first
choice. :class:`NonFiniteGuard` checks every optimizer step instead:

- ``"stop"`` (the default): raise :class:`TrainingDiverged` before the optimizer applies the step,
  naming the step, the loss and the likely causes. The adapter keeps the last finite weights, and
  no checkpoint or final adapter is written from non-finite weights (``SamoraTrainer._save``).
- ``"skip"``: drop the step's gradients (``p.grad = None``: the optimizer leaves those parameters
  and their moments untouched; the learning-rate schedule still advances), log a warning and count
  the step in ``nonfinite_skipped_steps``. The logged ``loss`` and the final ``train_loss`` are then means
  over the trained steps only (a window of skipped steps alone logs no loss): a skipped step is
  reported as skipped, never as a loss.

Under fp16 mixed precision, infinite gradients are the loss scaler's normal signal to lower its
scale (it skips the step itself), so only losses are checked there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from samora.training.settings import NONFINITE_ACTIONS

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss, gradient or adapter weight."""


def divergence_hint(learning_rate: float | None) -> str:
    """The likely causes of a non-finite step, and what to change."""
    rate = f" (now {learning_rate:.3g})" if learning_rate is not None else ""
    return (
        "Likely causes: a learning rate too high for this model" + rate + " (lower it, e.g. 10x), or an "
        "adapter hyperparameter that is non-finite or far too large (alpha and its scale alpha/r, a "
        "regulariser weight such as lambda_orth); under fp16, an overflow (use bf16 or fp32). To skip "
        "such steps instead of stopping, set on_nonfinite='skip' (CLI: train.on_nonfinite=skip)."
    )


def nonfinite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity."""
    return [
        name
        for name, tensor in tensors.items()
        if torch.is_floating_point(tensor) and not bool(torch.isfinite(tensor).all())
    ]


class NonFiniteGuard(TrainerCallback):
    """Checks the losses and the gradients of every optimizer step before the optimizer applies it.

    The trainer calls :meth:`observe_loss` with every micro-batch loss (kept on the device: no
    synchronisation per micro-batch); ``on_pre_optimizer_step`` (after gradient clipping, before
    ``optimizer.step()``) makes one decision per step, agreed by all processes.
    """

    def __init__(self, action: str = "stop", check_gradients: bool = True) -> None:
        if action not in NONFINITE_ACTIONS:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_ACTIONS}, got {action!r}")
        self.action = action
        self.check_gradients = check_gradients
        self.skipped_steps = 0
        self._bad_losses: torch.Tensor | None = None
        self._first_bad_loss: torch.Tensor | None = None
        self._step_loss: torch.Tensor | None = None  # this step's micro-batch losses, summed as the Trainer does
        self._step_skipped = False
        self._window_loss: torch.Tensor | float = 0.0  # trained (not skipped) steps since the last log
        self._window_steps = 0
        self._total_loss = 0.0  # every trained step of this call, reduced over processes
        self._total_steps = 0

    def observe_loss(self, loss: torch.Tensor) -> None:
        loss = loss.detach()
        self._step_loss = loss if self._step_loss is None else self._step_loss + loss
        bad = (~torch.isfinite(loss)).any().to(torch.int64)
        if self._bad_losses is None:
            self._bad_losses, self._first_bad_loss = bad, loss.reshape(-1)[:1].float()
        else:
            self._bad_losses = self._bad_losses + bad

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        gradients = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
        counts = self._step_counts(gradients, check_gradients=self.check_gradients and not args.fp16)
        bad_losses, bad_gradients = (int(c) for c in counts.tolist())
        loss = self._first_bad_loss
        self._bad_losses = self._first_bad_loss = None
        self._step_skipped = False
        if not bad_losses and not bad_gradients:
            return
        step = state.global_step + 1
        what = (
            f"{bad_losses} non-finite micro-batch loss(es) (first: {float(loss.item())})"
            if bad_losses
            else "a finite loss"
        ) + f" and {bad_gradients} of {len(gradients)} gradient tensors non-finite"
        learning_rate = optimizer.param_groups[0]["lr"] if optimizer is not None else None
        if self.action == "stop":
            raise TrainingDiverged(
                f"training diverged at step {step} of {state.max_steps}: {what}. The adapter "
                f"keeps the weights of step {step - 1}; nothing was saved from this step. "
                + divergence_hint(learning_rate)
            )
        for parameter in model.parameters():
            parameter.grad = None
        self._step_skipped = True
        self.skipped_steps += 1
        logger.warning("skipping step %d (%s); %d step(s) skipped so far", step, what, self.skipped_steps)

    def on_step_end(self, args, state, control, **kwargs):
        """A trained step's loss joins the mean; a skipped step's does not (it is counted as skipped)."""
        if self._step_loss is not None and not self._step_skipped:
            self._window_loss = self._window_loss + self._step_loss
            self._window_steps += 1
        self._step_loss, self._step_skipped = None, False

    def mean_loss_since_log(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> float | None:
        """The mean loss of the steps trained (not skipped) since the last call, ``reduce`` averaging it
        over processes as the Trainer does; None when every such step was skipped. What ``"skip"``
        logs as ``loss``, in place of the Trainer's mean over all steps, which counts a skipped step
        as the mean of the steps before it (0 when no step before it was logged)."""
        steps, window = self._window_steps, self._window_loss
        self._window_loss, self._window_steps = 0.0, 0
        if not steps:
            return None
        total = float(reduce(window.detach().clone()).item())
        self._total_loss += total
        self._total_steps += steps
        return total / steps

    def mean_loss(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> float:
        """The mean loss of every step trained (not skipped) so far; NaN when none was."""
        self.mean_loss_since_log(reduce)
        return self._total_loss / self._total_steps if self._total_steps else math.nan

    def _step_counts(self, gradients: list[torch.Tensor], check_gradients: bool) -> torch.Tensor:
        """``[micro-batches with a non-finite loss, non-finite gradient tensors]``, summed over processes."""
        device = gradients[0].device if gradients else torch.device("cpu")
        if self._bad_losses is not None:
            device = self._bad_losses.device
        bad_losses = self._bad_losses if self._bad_losses is not None else torch.zeros((), dtype=torch.int64)
        bad_gradients = torch.zeros((), dtype=torch.int64, device=device)
        if check_gradients and gradients:
            finite = torch.stack([torch.isfinite(g).all() for g in gradients])
            bad_gradients = (~finite).sum().to(device)
        counts = torch.stack([bad_losses.to(device), bad_gradients])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(counts)  # every process takes the same decision
        return counts
