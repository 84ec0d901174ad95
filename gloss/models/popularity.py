"""Most-popular items in the training sequences: the floor every model must clear."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from gloss.data import GlossData
from gloss.models.base import ScoringRecommender


class Popularity(ScoringRecommender):
    name = "popularity"

    def __init__(self, exclude_seen: bool):
        self.exclude_seen = exclude_seen
        self.counts: np.ndarray | None = None

    def fit(self, data: GlossData) -> None:
        self.counts = data.training_counts()

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(histories), len(self.counts)))

    @property
    def n_items(self) -> int:
        return len(self.counts)

    def sparse_scores(self, histories: Sequence[np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """No per-user part: every ranking is the popularity order (seen items skipped)."""
        return sp.csr_matrix((len(histories), len(self.counts)), dtype=np.float32), self.counts
