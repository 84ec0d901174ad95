"""Lightning callback: training progress as plain log lines, so run.log shows it when stdout is not a TTY.

Lightning reports train/val loss only in its progress bar, which a log file never sees. `LogProgress` writes to
`gloss.train` at INFO (global rank 0 only):
- each train epoch end: "epoch E: step S, train/loss x, val/loss y, lr z, T s[, t tokens/s][, peak GPU memory m GiB]"
  (val/loss only when validation ran in that epoch; train/loss is the epoch mean of the loss the module returned, not
  Lightning's last-step value; tokens/s counts the batches' `attention_mask` (non-padding tokens) where batches have
  one, every input token of a padding-free batch (`position_ids`, no mask: gloss.data.prompt_datamodule), over the epoch's time, which includes its validation; peak memory on a CUDA device only, since the start of
  fit);
- during a long epoch, at most every `interval_s`: "epoch E: step i/N, loss x, r steps/s[, t tokens/s]" (loss = epoch
  mean so far). Steps are batches; optimizer steps are batches / accumulate_grad_batches.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Mapping

import lightning as L
import torch

log = logging.getLogger("gloss.train")


class LogProgress(L.Callback):
    """See the module docstring; `clock` is injectable for tests."""

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s, self.clock = float(interval_s), clock
        self._loss_sum, self._loss_n, self._val_loss, self._val_epoch = 0.0, 0, None, -1
        self._start = self._last = 0.0
        self._tokens = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loss_sum, self._loss_n, self._tokens = 0.0, 0, 0
        self._start = self._last = self.clock()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
        if isinstance(mask, torch.Tensor):
            self._tokens += int(mask.sum())
        elif isinstance(batch, Mapping) and isinstance(batch.get("position_ids"), torch.Tensor):
            self._tokens += batch["input_ids"].numel()  # padding-free: every token is real
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            value = float(loss.detach())
            if pl_module.automatic_optimization:  # Lightning hands hooks the loss divided by the accumulation
                value *= trainer.accumulate_grad_batches
            if math.isfinite(value):
                self._loss_sum, self._loss_n = self._loss_sum + value, self._loss_n + 1
        now = self.clock()
        if now - self._last < self.interval_s:
            return
        self._last = now
        total = trainer.num_training_batches
        steps = f"{batch_idx + 1}/{total}" if isinstance(total, int) or math.isfinite(total) else f"{batch_idx + 1}"
        elapsed = now - self._start
        rate = (batch_idx + 1) / elapsed if elapsed > 0 else 0.0
        log.info("epoch %d: step %s, loss %s, %.2f steps/s%s", trainer.current_epoch, steps, self._mean(), rate,
                 self._token_rate(elapsed))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Remember the epoch's aggregated val/loss with its epoch, so an epoch line never shows a stale value from an earlier epoch."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        value = trainer.callback_metrics.get("val/loss")
        if value is not None:
            self._val_loss, self._val_epoch = float(value), trainer.current_epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        parts = [f"epoch {trainer.current_epoch}: step {trainer.global_step}", f"train/loss {self._mean()}"]
        if self._val_epoch == trainer.current_epoch and self._val_loss is not None:
            parts.append(f"val/loss {self._val_loss:.4f}")
        if trainer.optimizers and trainer.optimizers[0].param_groups:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.3g}")
        elapsed = self.clock() - self._start
        parts.append(f"{elapsed:.1f}s{self._token_rate(elapsed)}")
        if pl_module.device.type == "cuda":
            parts.append(f"peak GPU memory {torch.cuda.max_memory_allocated(pl_module.device) / 2**30:.2f} GiB")
        log.info(", ".join(parts))

    def _token_rate(self, elapsed: float) -> str:
        return f", {self._tokens / elapsed:.0f} tokens/s" if self._tokens and elapsed > 0 else ""

    def _mean(self) -> str:
        return f"{self._loss_sum / self._loss_n:.4f}" if self._loss_n else "n/a"
