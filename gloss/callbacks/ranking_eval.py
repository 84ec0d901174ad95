"""Lightning callback: after each validation epoch, rank the validation users and log full-catalog metrics.

Works for any `Recommender` (ID models score the catalog; generators generate titles and retrieve), so
`val/ndcg@5` can drive checkpointing and early stopping the same way for every trained model.
"""
from __future__ import annotations

import logging

import lightning as L
import numpy as np

from gloss.data import GlossData
from gloss.eval import evaluate_ranking
from gloss.models.base import Recommender

log = logging.getLogger(__name__)


class RankingEvalCallback(L.Callback):
    def __init__(self, recommender: Recommender, data: GlossData, k: int = 10, max_users: int | None = None, seed: int = 0):
        self.recommender, self.data, self.k = recommender, data, k
        examples = data.split.val_examples()
        if max_users is not None and max_users < len(examples):
            keep = np.random.default_rng(seed).choice(len(examples), max_users, replace=False)
            examples = examples[np.sort(keep)]
        self.examples = examples
        self.last: dict[str, float] = {}

    def compute(self) -> dict[str, float]:
        histories = self.data.split.histories(self.examples)
        targets = self.data.split.targets(self.examples)
        ranking = self.recommender.recommend(histories, self.k)
        segments = self.data.segments()[self.examples[:, 0]]
        return evaluate_ranking(ranking.items, targets, segments).overall

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        was_training = pl_module.training
        pl_module.eval()
        self.last = {f"val/{m}": v for m, v in self.compute().items()}
        if was_training:
            pl_module.train()
        pl_module.log_dict(self.last, prog_bar=False, logger=bool(trainer.loggers))
        log.info("epoch %d: %s", trainer.current_epoch, {k: round(v, 4) for k, v in self.last.items()})
