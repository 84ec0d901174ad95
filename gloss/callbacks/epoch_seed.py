"""Lightning callback: every training epoch draws random numbers that depend on (seed, epoch) alone.

Lightning does not checkpoint random number generators, and `gloss.training.train` seeds them once per fit, so
without this a run resumed at epoch e would draw epoch 0's dropout masks / sampled negatives again instead of the
uninterrupted run's epoch-e ones. `EpochSeed` reseeds torch (CPU and CUDA), numpy and Python's `random` from
(seed, epoch) just before each epoch's first training batch, so epoch e is identical whether the run went through or
was resumed from the checkpoint written at the end of epoch e - 1. (Not at on_train_epoch_start: the DataLoader
iterator, whose creation draws from torch's generator, is created after that hook in an epoch that continues a fit
but before it in a fit's first epoch, so the draws up to the first batch differ between the two.) Every rank gets
the same seed, as from `seed_everything(seed)`. DataLoader worker processes are not covered (gloss's DataModules
use none)."""
from __future__ import annotations

from typing import Any

import lightning as L
from lightning.fabric.utilities.seed import seed_everything

from gloss.data.samplers import epoch_seed


class EpochSeed(L.Callback):
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx == 0:
            seed_everything(epoch_seed(self.seed, trainer.current_epoch), workers=True, verbose=False)
