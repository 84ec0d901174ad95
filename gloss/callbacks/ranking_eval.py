"""The retrieval callback: after each validation epoch, rank the validation users and log full-catalog metrics.

Works for any `Recommender` (ID models score the catalog; generators generate titles and retrieve), so
`val/ndcg@5` (the run's `monitor`) drives checkpointing and early stopping the same way for every trained model.
Under DDP each rank ranks its share of the users and the per-user metric sums are reduced across ranks, so every
rank logs the same value of every metric over all the chosen users. Rankings follow the shared tie rule
(gloss.models.base), so the top-10 it scores at k=10 is the top-10 of the test split's ranking at any eval.k.
"""
from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch

from gloss.data import GlossData
from gloss.eval import METRIC_KEYS, evaluate_ranking, sample_examples
from gloss.models.base import Recommender

log = logging.getLogger(__name__)


class RankingEvalCallback(L.Callback):
    def __init__(self, recommender: Recommender, data: GlossData, k: int = 10, max_users: int | None = None, seed: int = 0):
        self.recommender, self.data, self.k = recommender, data, k
        self.examples = sample_examples(data.split.val_examples(), max_users, seed)
        self.last: dict[str, float] = {}

    def metric_sums(self, examples: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(metric names, [sum over `examples` of each per-user metric..., number of users])."""
        names = list(METRIC_KEYS)
        if not len(examples):
            return names, np.zeros(len(names) + 1)
        histories = self.data.split.histories(examples)
        ranking = self.recommender.recommend(histories, self.k)
        segments = self.data.segments()[examples[:, 0]]
        per_user = evaluate_ranking(ranking.items, self.data.split.targets(examples), segments).per_user
        return names, np.array([per_user[m].sum() for m in names] + [len(examples)], dtype=np.float64)

    def compute(self, rank: int = 0, world_size: int = 1, reduce=None) -> dict[str, float]:
        names, sums = self.metric_sums(self.examples[rank::world_size])
        if reduce is not None:
            sums = reduce(sums)
        return {m: float(v) / max(float(sums[-1]), 1.0) for m, v in zip(names, sums[:-1])}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        was_training = pl_module.training
        pl_module.eval()

        def reduce(sums: np.ndarray) -> np.ndarray:
            tensor = torch.tensor(sums, dtype=torch.float64, device=trainer.strategy.root_device)
            return trainer.strategy.reduce(tensor, reduce_op="sum").cpu().numpy()

        self.last = {f"val/{m}": v for m, v in self.compute(trainer.global_rank, trainer.world_size, reduce).items()}
        if was_training:
            pl_module.train()
        # identical on every rank (reduced above); sync_dist keeps Lightning from warning under DDP
        pl_module.log_dict(self.last, prog_bar=False, logger=bool(trainer.loggers), sync_dist=trainer.world_size > 1)
        if trainer.is_global_zero:
            log.info("epoch %d: %s (%d validation users)", trainer.current_epoch,
                     {k: round(v, 4) for k, v in self.last.items()}, len(self.examples))
