"""``SamoraTrainer``: the Hugging Face Trainer with the few hooks a samora adapter needs.

Everything else (data-parallel, FSDP, DeepSpeed, mixed precision, gradient checkpointing,
accumulation, schedulers, logging integrations) is the Trainer's own machinery. The hooks:

- ``compute_loss`` sets the adapter's ``aux_scale`` so the method's regularisers count exactly once
  per optimizer step (see :meth:`SamoraTrainer.regularizer_scale`), and, on the steps that end at a
  logging step, records router weights for the router statistics.
- ``log`` adds router statistics, the weighted regulariser terms and the token throughput to the
  training logs, so they reach the console, TensorBoard, W&B... like any metric.
- ``_save`` writes only the adapter (``samora.save_adapter``), never the frozen base (the tokenizer
  only beside the final adapter, not in every checkpoint); under FSDP
  (full state dict) or ZeRO-3 it takes the adapter from the gathered state dict the Trainer hands
  it, as PEFT does. ``_load_from_checkpoint`` loads it back into the adapted model, so
  ``resume_from_checkpoint`` restores it (the Trainer restores optimizer, scheduler, scaler, RNG and
  data position itself; FSDP and DeepSpeed resume from their own checkpoint files).
- ``train(resume_from_checkpoint=True)`` resumes from the last *complete* checkpoint, skipping a
  folder left half-written by a crash or a full disk.
- :class:`~samora.training.callbacks.AfterOptimizerStep` calls the adapter's
  ``after_optimizer_step()`` once per optimizer step.
- :class:`~samora.training.divergence.NonFiniteGuard` stops training at the first non-finite loss or
  gradient (``on_nonfinite="stop"``) or skips that step (``"skip"``); ``_save`` refuses to write an
  adapter that holds NaN or infinity, so neither a checkpoint nor the final adapter can.
"""

from __future__ import annotations

import os
import time

import torch
from transformers import Trainer
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_callback import ProgressCallback, TrainerState
from transformers.trainer_utils import IntervalStrategy, TrainOutput

from samora.adapter_files import adapter_state_dict
from samora.analysis.usage import RouterUsage
from samora.inject import adapter_of
from samora.persistence import load_adapter_weights, save_adapter
from samora.training.callbacks import AfterOptimizerStep, SamoraProgressCallback
from samora.training.checkpoints import TRAINER_STATE, checkpoint_step, disk_full_error, last_complete_checkpoint
from samora.training.divergence import NonFiniteGuard, TrainingDiverged, divergence_hint, nonfinite_tensors
from samora.training.router_logs import router_log_entries


def _environment_flag(name: str) -> bool:
    """Whether accelerate's launcher set the environment flag ``name`` (``true`` / ``1``)."""
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


class SamoraTrainer(Trainer):
    """A ``transformers.Trainer`` for a model adapted by :func:`samora.get_model`.

    Takes the Trainer's arguments unchanged, plus ``on_nonfinite`` (``"stop"`` or ``"skip"``: what a
    non-finite loss or gradient does, see :mod:`samora.training.divergence`). The dataset needs a
    ``task_ids`` column (or the collator must produce one) for methods that route by task; the
    adapted model's forward names ``task_ids``, so ``remove_unused_columns`` keeps it.
    """

    def __init__(self, model=None, *args, on_nonfinite: str = "stop", **kwargs) -> None:
        self.nonfinite_guard = NonFiniteGuard(on_nonfinite)
        super().__init__(model, *args, **kwargs)
        self._refuse_silent_data_parallel()
        self.adapter = adapter_of(self.model)
        if (self.compute_loss_func is not None or self.label_smoother is not None) and self.adapter.aux_losses():
            raise ValueError(
                f"method '{self.adapter.config.method}' adds regularisers to the model's own loss, but "
                "compute_loss_func / label_smoothing_factor make the Trainer compute the loss without it, so "
                "the regularisers would silently vanish; leave both unset"
            )
        self.add_callback(AfterOptimizerStep())
        self.add_callback(self.nonfinite_guard)
        if self.pop_callback(ProgressCallback) is not None:
            self.add_callback(SamoraProgressCallback())
        self.router_usage = RouterUsage(self.adapter.config.tasks)
        self._tokens_since_log = torch.zeros((), dtype=torch.float64, device=self.args.device)
        self._tokens_total = 0.0
        self._last_log_time: float | None = None

    def _refuse_silent_data_parallel(self) -> None:
        """FSDP or DeepSpeed asked for (``fsdp=...``, or an accelerate config that sets
        ``ACCELERATE_USE_FSDP`` / ``ACCELERATE_USE_DEEPSPEED``) but not what accelerate set up, e.g. FSDP on
        CPU, which accelerate enables on GPUs only: an error, not a run that silently shards nothing."""
        asked = {
            "FSDP": bool(self.args.fsdp) or _environment_flag("ACCELERATE_USE_FSDP"),
            "DeepSpeed": bool(self.args.deepspeed) or _environment_flag("ACCELERATE_USE_DEEPSPEED"),
        }
        enabled = {"FSDP": self.is_fsdp_enabled, "DeepSpeed": self.is_deepspeed_enabled}
        for name in (name for name in asked if asked[name] and not enabled[name]):
            raise ValueError(
                f"{name} was asked for (TrainingArguments or the accelerate config) but accelerate set up "
                f"{self.accelerator.distributed_type.value} instead (accelerate enables FSDP on GPUs only): the run "
                f"would silently train without {name}. Run it where {name} runs, or ask for plain data "
                "parallelism (torchrun, or an accelerate config with distributed_type: MULTI_CPU / MULTI_GPU)"
            )

    # -- loss ------------------------------------------------------------------------------------
    def regularizer_scale(self, num_items_in_batch, training: bool) -> float:
        """The ``aux_scale`` that makes the regularisers count once per optimizer step.

        The model adds ``aux_scale * R`` (R: the weighted regularisers) to every micro-batch loss.
        When the task loss is normalised by ``num_items_in_batch`` (the number of label tokens of the
        whole accumulated step, which the Trainer passes to models that accept loss kwargs, i.e.
        every transformers causal LM), the Trainer does not divide micro-batch losses by the number
        of accumulation steps k: it sums them, so R would count k times. With
        ``average_tokens_across_devices`` it also multiplies each rank's loss by the number of
        processes P (the task loss is then a per-rank share of a global token mean and DDP averages
        gradients over ranks), so R would count P times more. Hence ``1 / (k P)``. When the Trainer
        divides the loss by k itself (a model without loss kwargs), R already counts once: 1.
        The same factor applies to evaluation losses with k = 1.
        """
        # transformers 5 lets a subclass declare it (None: decide as below); 4.57 has no such attribute
        scaled_for_accumulation = getattr(self, "loss_is_scaled_for_ga", None)
        if scaled_for_accumulation is None:
            scaled_for_accumulation = (
                self.model_accepts_loss_kwargs and num_items_in_batch is not None
            ) or self.compute_loss_func is not None
        micro_batches = getattr(self, "current_gradient_accumulation_steps", 1) if training else 1
        micro_batches = micro_batches if scaled_for_accumulation else 1
        processes = 1
        if (
            self.args.average_tokens_across_devices
            and num_items_in_batch is not None
            and (self.model_accepts_loss_kwargs or self.compute_loss_func)
        ):
            processes = (
                self.args.n_gpu if self.args.n_gpu > 1 else self.accelerator.num_processes // self.get_tp_size()
            )
        return 1.0 / (micro_batches * processes)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        training = model.training
        self.adapter.aux_scale = self.regularizer_scale(num_items_in_batch, training)
        sample = training and self._is_sampled_step()
        state = self.adapter.state
        state.record_routing = sample
        try:
            result = super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        finally:
            state.record_routing = False
        if sample:
            self.router_usage.add(state.routing, state.task_ids, inputs.get("attention_mask"))
            state.routing.clear()
        if training:
            mask = inputs.get("attention_mask")
            count = mask.sum() if mask is not None else inputs["input_ids"].numel()
            self._tokens_since_log += count
        return result

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.nonfinite_guard.observe_loss(loss)
        return loss

    def _is_sampled_step(self) -> bool:
        """Whether the optimizer step now running ends at a logging step (its batches feed the stats)."""
        strategy = self.args.logging_strategy
        if strategy == IntervalStrategy.NO:
            return False
        if strategy != IntervalStrategy.STEPS:
            return True  # epoch logging: accumulate over every step of the epoch
        step = self.state.global_step + 1
        return step % self.state.logging_steps == 0 or (self.args.logging_first_step and step == 1)

    # -- logging ---------------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and "learning_rate" in logs:  # a training log (not eval or the final summary)
            if self.nonfinite_guard.action == "skip":
                self._loss_of_trained_steps(logs)
            logs.update(self._training_log_entries())
        elif "train_loss" in logs and self.nonfinite_guard.action == "skip":  # the final summary
            logs["train_loss"] = self.nonfinite_guard.mean_loss(self._mean_over_processes)
            logs["nonfinite_skipped_steps"] = self.nonfinite_guard.skipped_steps
        super().log(logs, start_time)

    def _loss_of_trained_steps(self, logs: dict[str, float]) -> None:
        """``on_nonfinite="skip"``: ``loss`` is the mean over the steps trained since the last log (left
        out when all were skipped), never a skipped step counted as a loss."""
        loss = self.nonfinite_guard.mean_loss_since_log(self._mean_over_processes)
        if loss is None:
            del logs["loss"]
        else:
            logs["loss"] = loss

    def _mean_over_processes(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(tensor, reduction="mean")

    def _training_log_entries(self) -> dict[str, float]:
        entries = {f"aux/{name}": float(value) for name, value in self.adapter.last_losses.items() if name != "task"}
        if self.router_usage:
            self.router_usage.reduce(lambda t: self.accelerator.reduce(t, reduction="sum"))
            entries.update(router_log_entries(self.router_usage, self.adapter))
            self.router_usage.reset()
        tokens = self._reduced_tokens_since_log()
        self._tokens_total += tokens
        now = time.perf_counter()
        if self._last_log_time is not None and now > self._last_log_time:
            entries["tokens_per_second"] = round(tokens / (now - self._last_log_time), 1)
        self._last_log_time = now
        entries["tokens_seen"] = self._tokens_total
        if self.nonfinite_guard.action == "skip":
            entries["nonfinite_skipped_steps"] = self.nonfinite_guard.skipped_steps
        return entries

    # -- checkpoints -----------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Write the adapter (not the frozen base), the training arguments and, beside the final adapter
        only, the tokenizer."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if state_dict is not None and not state_dict:
            raise ValueError(
                "DeepSpeed ZeRO-3 handed the Trainer no gathered weights, so the adapter cannot be "
                "saved; set stage3_gather_16bit_weights_on_model_save: true in the DeepSpeed config"
            )
        self._refuse_nonfinite_adapter(model, state_dict)
        # FSDP / ZeRO-3: the gathered full state dict (this rank's own tensors are shards)
        save_adapter(model, output_dir, state_dict=state_dict)
        if self.processing_class is not None and os.path.abspath(output_dir) == os.path.abspath(self.args.output_dir):
            self.processing_class.save_pretrained(output_dir)  # once per run, beside the final adapter
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _save_checkpoint(self, model, trial):
        """The Trainer's checkpoint; a full disk is an error naming the folder and the space needed."""
        try:
            return super()._save_checkpoint(model, trial)
        except (OSError, RuntimeError) as err:
            trainable = sum(p.numel() * p.element_size() for p in self.model.parameters() if p.requires_grad)
            full = disk_full_error(err, self.args.output_dir, trainable)
            if full is None:
                raise
            raise full from err

    def _refuse_nonfinite_adapter(self, model, state_dict: dict | None) -> None:
        """A NaN/inf adapter is never written: not as a checkpoint, not as the final adapter."""
        if state_dict is None:
            tensors = adapter_state_dict(model)
        else:  # gathered (FSDP / ZeRO-3): the trainable tensors under their names in the full state dict
            trainable = {name for name, p in model.named_parameters() if p.requires_grad}
            tensors = {k: v for k, v in state_dict.items() if k in trainable}
        bad = nonfinite_tensors(tensors)
        if bad:
            raise TrainingDiverged(
                f"after step {self.state.global_step} the adapter holds NaN or infinite values in {len(bad)} of "
                f"{len(tensors)} tensors (e.g. {bad[0]}); it was not saved. "
                + divergence_hint(self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else None)
            )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Load the adapter of a checkpoint written by :meth:`_save` into the adapted model, in place."""
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)  # their own full-model format
        load_adapter_weights(model if model is not None else self.model, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            return super()._load_best_model()
        load_adapter_weights(self.model, self.state.best_model_checkpoint)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs):
        """The Trainer's ``train``; ``resume_from_checkpoint=True`` picks the last complete checkpoint."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(
                    f"resume_from_checkpoint=True but {self.args.output_dir} holds no complete checkpoint"
                )
        if resume_from_checkpoint and self._reached_max_steps(resume_from_checkpoint):
            return self._restore_finished(resume_from_checkpoint)
        self._last_log_time = time.perf_counter()
        output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        self._tokens_total += self._reduced_tokens_since_log()
        if self.nonfinite_guard.action == "skip":  # the mean over the trained steps, as logged
            output = output._replace(training_loss=output.metrics["train_loss"])
        return output

    def _reached_max_steps(self, checkpoint: str) -> bool:
        """Whether ``checkpoint`` was written at (or past) ``max_steps``: a run killed after its last
        checkpoint. The Trainer would resume it into the next epoch and train one step more than
        ``max_steps`` (it checks the limit only after a step), so nothing is trained then."""
        plain = not (self.is_fsdp_enabled or self.is_deepspeed_enabled)  # those resume their own files
        return plain and 0 < self.args.max_steps <= checkpoint_step(checkpoint)

    def _restore_finished(self, checkpoint: str) -> TrainOutput:
        """The state and adapter of ``checkpoint``, with nothing left to train: the adapter is the one an
        uninterrupted run ends with. ``training_loss`` is the mean of the checkpoint's logged losses."""
        self.state = TrainerState.load_from_json(os.path.join(checkpoint, TRAINER_STATE))
        self._load_from_checkpoint(checkpoint)
        losses = [entry["loss"] for entry in self.state.log_history if "loss" in entry]
        mean_loss = sum(losses) / len(losses) if losses else float("nan")
        return TrainOutput(self.state.global_step, mean_loss, {"train_runtime": 0.0, "train_loss": mean_loss})

    @property
    def tokens_seen(self) -> float:
        """Non-padding input tokens trained on by this trainer, summed over processes."""
        return self._tokens_total

    def _reduced_tokens_since_log(self) -> float:
        tokens = float(self.accelerator.reduce(self._tokens_since_log.clone(), reduction="sum"))
        self._tokens_since_log.zero_()
        return tokens
