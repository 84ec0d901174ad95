"""Shared machinery of the ID-based sequential models (SASRec, BERT4Rec, GRU4Rec, BSARec).

An `IDSequentialRecommender` is both a `TrainableRecommender` (score the whole catalog from the last position) and
the LightningModule that gloss.training fits on a `SequenceDataModule` (conf/datamodule/sequence.yaml) with the
configured Trainer and callbacks. Its run folder keeps `model.ckpt` (hyper-parameters, catalog size, weights).
Subclasses define `build`, `training_loss` and `next_item_logits`.
"""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from gloss.data import GlossData
from gloss.data.padding import left_pad_item_ids, trim_left_padding
from gloss.errors import GlossError
from gloss.models.base import ScoringRecommender, TrainableRecommender

WEIGHTS = "model.ckpt"


class IDSequentialRecommender(ScoringRecommender, TrainableRecommender, L.LightningModule):
    def __init__(self, max_len: int, lr: float, weight_decay: float, exclude_seen: bool):
        L.LightningModule.__init__(self)
        self.save_hyperparameters()  # this and the subclass's arguments, into every checkpoint
        self.max_len, self.lr, self.weight_decay, self.exclude_seen = max_len, lr, weight_decay, exclude_seen
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
        loss = self.training_loss(trim_left_padding(batch[0]))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        tokens = trim_left_padding(batch[0])
        loss = F.cross_entropy(self.next_item_logits(tokens[:, :-1]).float(), tokens[:, -1] - 1)
        self.log("val/loss", loss, prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    # --- Recommender ----------------------------------------------------------------------------------
    def build_for(self, data: GlossData, seed: int, run_dir: Path | None = None) -> None:
        self.n_items = len(data.catalog)
        self.build(self.n_items)
        if run_dir is None:
            return
        path = Path(run_dir) / WEIGHTS
        if not path.is_file():
            raise GlossError(f"{path}: no saved {self.name} weights in this run folder")
        try:  # a run folder is data: tensors and plain values only, never a pickled object
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise GlossError(f"{path}: not a gloss weights file of tensors and plain values ({type(e).__name__}); "
                             "refused") from e
        if saved["n_items"] != self.n_items:
            raise GlossError(f"{path}: weights for {saved['n_items']} items, but dataset {data.name} has {self.n_items}")
        self.load_state_dict(saved["state_dict"])

    @property
    def lightning_module(self) -> L.LightningModule:
        return self

    def datamodule_inputs(self) -> dict:
        """Training rows as long as the model's context (also when it is one of GLoSS+'s sources)."""
        return {"max_len": self.max_len}

    def save(self, run_dir: Path) -> None:
        state = {k: v.cpu() for k, v in self.state_dict().items()}
        torch.save({"hyper_parameters": dict(self.hparams), "n_items": self.n_items, "state_dict": state}, Path(run_dir) / WEIGHTS)

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        self.eval()
        history = trim_left_padding(left_pad_item_ids(histories, self.max_len)).to(self.device)
        return self.next_item_logits(history).float().cpu().numpy()
