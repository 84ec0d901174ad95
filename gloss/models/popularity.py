"""Most-popular items in the training sequences: the floor every model must clear."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gloss.data import GlossData
from gloss.models.base import ScoringRecommender


class Popularity(ScoringRecommender):
    name = "popularity"

    def __init__(self, exclude_seen: bool = False):
        self.exclude_seen = exclude_seen
        self.counts: np.ndarray | None = None

    def fit(self, data: GlossData) -> None:
        seqs = data.split.train_sequences()
        self.counts = np.bincount(np.concatenate(seqs), minlength=len(data.catalog)).astype(np.float32)

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(histories), len(self.counts)))
