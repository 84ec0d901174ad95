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
        self.nonnegative = True

    def fit(self, data: GlossData) -> None:
        n = len(data.catalog)
        seqs = data.split.train_sequences()
        forward = transition_matrix(seqs, n, self.window)
        matrix = forward + self.backward_weight * forward.T.tocsr() if self.symmetric else forward
        self.matrix = matrix.astype(np.float64)  # the float64 queries would upcast a float32 matrix on every batch
        self.popularity = data.training_counts()
        self.popularity /= self.popularity.max()
        self.nonnegative = self.decay >= 0 and not (self.matrix.data < 0).any()  # sparse ranking is exact then

    @property
    def n_items(self) -> int:
        return self.matrix.shape[0]

    def query(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        """[len(histories), n_items]: decay^age on each history's `history_items` most recent items."""
        recent = [h[-self.history_items :][::-1] for h in histories]
        lengths = np.array([len(r) for r in recent], dtype=np.int64)
        cols = np.concatenate([np.asarray(r, dtype=np.int64) for r in recent] + [np.zeros(0, dtype=np.int64)])
        ages = np.arange(len(cols)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows = np.repeat(np.arange(len(histories)), lengths)
        return sp.csr_matrix((self.decay ** ages.astype(np.float64), (rows, cols)), shape=(len(histories), self.n_items))

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return (self.query(histories) @ self.matrix).toarray() + self.popularity_weight * self.popularity

    def sparse_scores(self, histories: Sequence[np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray] | None:
        """The transition votes (sparse) and the popularity term; None (dense ranking) if a vote can be negative."""
        if not self.nonnegative:
            return None
        return self.query(histories) @ self.matrix, self.popularity_weight * self.popularity
