"""Item co-occurrence / transition counts: score(j | history) = sum over recent items i of decay^age * C[i, j].

C[i, j] counts how often j follows i within `window` steps in the training sequences (weighted by
1 / distance); `symmetric` also counts j preceding i. Popularity breaks ties for cold rows.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from gloss.data import GlossData
from gloss.models.base import ScoringRecommender


def transition_matrix(sequences: Sequence[np.ndarray], n_items: int, window: int) -> sp.csr_matrix:
    """C[i, j] = sum over occurrences of j following i within `window` steps of 1 / distance."""
    rows, cols, vals = [], [], []
    for s in sequences:
        for d in range(1, window + 1):
            if len(s) > d:
                rows.append(s[:-d])
                cols.append(s[d:])
                vals.append(np.full(len(s) - d, 1.0 / d, dtype=np.float32))
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    return sp.csr_matrix((v, (r, c)), shape=(n_items, n_items))


class CoOccurrence(ScoringRecommender):
    name = "cooc"

    def __init__(
        self,
        window: int,
        symmetric: bool,
        backward_weight: float,
        history_items: int,
        decay: float,
        popularity_weight: float,
        exclude_seen: bool,
    ):
        self.window, self.symmetric, self.backward_weight = window, symmetric, backward_weight
        self.history_items, self.decay, self.popularity_weight = history_items, decay, popularity_weight
        self.exclude_seen = exclude_seen
        self.matrix: sp.csr_matrix | None = None
        self.popularity: np.ndarray | None = None

    def fit(self, data: GlossData) -> None:
        n = len(data.catalog)
        seqs = data.split.train_sequences()
        forward = transition_matrix(seqs, n, self.window)
        self.matrix = forward + self.backward_weight * forward.T.tocsr() if self.symmetric else forward
        self.popularity = data.training_counts()
        self.popularity /= self.popularity.max()

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        rows, cols, vals = [], [], []
        for u, h in enumerate(histories):
            recent = h[-self.history_items :][::-1]
            rows.extend([u] * len(recent))
            cols.extend(recent.tolist())
            vals.extend(self.decay ** np.arange(len(recent)))
        query = sp.csr_matrix((vals, (rows, cols)), shape=(len(histories), self.matrix.shape[0]))
        return (query @ self.matrix).toarray() + self.popularity_weight * self.popularity
