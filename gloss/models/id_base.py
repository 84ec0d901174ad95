"""Shared machinery of the ID-based sequential models (SASRec, BERT4Rec, GRU4Rec).

An `IDSequentialRecommender` is both a `Recommender` (score the whole catalog from the last position)
and a LightningModule. `fit` builds the network for the catalog, trains it with a Lightning Trainer
made from the run's trainer config, monitors `val/ndcg@5` on the validation users
(`RankingEvalCallback`) for checkpointing and early stopping, and reloads the best checkpoint.
Subclasses define `build`, `training_loss` and `next_item_logits`.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from gloss.data import GlossData
from gloss.data.sequence_datamodule import SequenceDataModule, left_pad, trim_padding
from gloss.training import fit_on_validation
from gloss.models.base import RunContext, ScoringRecommender



class IDSequentialRecommender(ScoringRecommender, L.LightningModule):
    def __init__(
        self,
        max_len: int = 50,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        max_epochs: int | None = None,
        patience: int = 5,
        val_max_users: int | None = None,
        exclude_seen: bool = False,
    ):
        L.LightningModule.__init__(self)
        self.max_len, self.train_batch_size, self.lr, self.weight_decay = max_len, batch_size, lr, weight_decay
        self.max_epochs, self.patience, self.val_max_users = max_epochs, patience, val_max_users
        self.exclude_seen = exclude_seen
        self.n_items = 0

    # --- what a model defines ---------------------------------------------------------------------
    @abstractmethod
    def build(self, n_items: int) -> None:
        """Create the layers for a catalog of `n_items` (ids 1..n_items, 0 = padding)."""

    @abstractmethod
    def training_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Loss on a batch of left-padded training sequences [B, <= max_len + 1]."""

    @abstractmethod
    def next_item_logits(self, history: torch.Tensor) -> torch.Tensor:
        """[B, n_items] scores (column j = catalog index j) of the next item after left-padded histories [B, <= max_len]."""

    # --- Lightning ----------------------------------------------------------------------------------
    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(trim_padding(batch[0]))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        tokens = trim_padding(batch[0])
        loss = F.cross_entropy(self.next_item_logits(tokens[:, :-1]).float(), tokens[:, -1] - 1)
        self.log("val/loss", loss, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    # --- Recommender ----------------------------------------------------------------------------------
    def fit(self, data: GlossData, ctx: RunContext) -> None:
        L.seed_everything(ctx.seed, workers=True)
        self.n_items = len(data.catalog)
        self.build(self.n_items)
        datamodule = SequenceDataModule(data, self.max_len, self.train_batch_size, ctx.seed)
        fit_on_validation(self, datamodule, self, data, ctx, {"max_epochs": self.max_epochs}, self.val_max_users,
                          self.patience)

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        self.eval()
        history = trim_padding(left_pad(histories, self.max_len)).to(self.device)
        return self.next_item_logits(history).float().cpu().numpy()


