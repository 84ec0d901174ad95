"""A model added the way the README says: one class (here) and one YAML (written by tests/test_add_a_model.py)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gloss.data import GlossData
from gloss.models.base import ScoringRecommender


class NextById(ScoringRecommender):
    """Scores item (last + 1) highest, then the catalog by training popularity (the tiny dataset walks item ids)."""

    name = "next_by_id"

    def __init__(self, popularity_weight: float, exclude_seen: bool):
        self.popularity_weight, self.exclude_seen = popularity_weight, exclude_seen

    def fit(self, data: GlossData) -> None:
        counts = data.training_counts().astype(np.float64)
        self.prior = self.popularity_weight * counts / max(counts.max(), 1.0)

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        scores = np.tile(self.prior, (len(histories), 1))
        for row, history in enumerate(histories):
            scores[row, (history[-1] + 1) % scores.shape[1]] += 1.0
        return scores
