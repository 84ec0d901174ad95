"""Transition-graph heuristic (TGH, after Han et al. 2026, "shortcut-solvable benchmarks"; our own code): no training.

The item-transition graph of the training sequences has an edge i -> j (weight: how often) when j directly follows i.
A user's candidates are the graph's rings around its last `n_last` items: ring 1 = their direct neighbours, ring 2 =
the neighbours of ring 1 not already reached, ... up to `max_rings`. Nearer rings rank first; inside a ring the order
is the text-embedding similarity of the item to the last history item (`within=similarity`), the transition count
from the previous ring (`count`), or a blend of both; items no ring reaches follow by training popularity. The point
of the baseline: if it scores near the learned models, the benchmark rewards local graph structure, not learning.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.models.base import ScoringRecommender
from gloss.models.cooc import transition_matrix

DIRECTIONS = ("out", "both")
WITHIN = ("similarity", "count", "blend")


class TransitionGraph(ScoringRecommender):
    name = "tgh"
    uses_retriever = True  # the similarity inside a ring comes from the configured retriever's embeddings
    batch_size = 256  # several dense [batch, n_items] arrays per batch

    def __init__(
        self,
        retriever,
        n_last: int,
        max_rings: int,
        direction: str,
        within: str,
        count_weight: float,
        exclude_seen: bool,
    ):
        if n_last not in (1, 2):
            raise GlossError(f"model.n_last={n_last!r}: must be 1 or 2 (the last items whose rings are searched)")
        if not isinstance(max_rings, int) or max_rings < 1:
            raise GlossError(f"model.max_rings={max_rings!r}: must be an integer >= 1")
        if direction not in DIRECTIONS:
            raise GlossError(f"model.direction={direction!r}: must be one of {', '.join(DIRECTIONS)}")
        if within not in WITHIN:
            raise GlossError(f"model.within={within!r}: must be one of {', '.join(WITHIN)}")
        if not 0 <= count_weight <= 1:
            raise GlossError(f"model.count_weight={count_weight!r}: must be in [0, 1] (within=blend)")
        if within != "count" and not hasattr(retriever, "embed"):
            raise GlossError(f"model.within={within}: needs a dense retriever's embeddings (e.g. retriever=dense); "
                             "with this retriever use model.within=count")
        self.retriever, self.n_last, self.max_rings, self.direction = retriever, n_last, max_rings, direction
        self.within, self.count_weight, self.exclude_seen = within, count_weight, exclude_seen
        self.graph: sp.csr_matrix | None = None
        self.popularity: np.ndarray | None = None
        self.embeddings: np.ndarray | None = None

    def fit(self, data: GlossData) -> None:
        n = len(data.catalog)
        graph = transition_matrix(data.split.train_sequences(), n, window=1)  # C[i, j]: times j directly follows i
        self.graph = (graph + graph.T).tocsr() if self.direction == "both" else graph
        popularity = data.training_counts().astype(np.float64)
        self.popularity = popularity / max(popularity.max(), 1.0)  # in [0, 1]: below every ring's score
        if self.within != "count":  # L2-normalised (DenseRetriever): dot products are cosines
            self.embeddings = self.retriever.embed(data.catalog.texts, getattr(self.retriever, "passage_prefix", ""),
                                                   "catalog")

    def rings(self, histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """[n, n_items] ring of each item (0: not reached, -1: the centre, the last items) and its transition count from the ring before it."""
        n, n_items = len(histories), self.graph.shape[0]
        seeds = [np.unique(h[-self.n_last:]) for h in histories]
        rows = np.repeat(np.arange(n), [len(s) for s in seeds])
        cols = np.concatenate(seeds) if seeds else np.zeros(0, dtype=np.int64)
        frontier = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n_items))
        ring = np.zeros((n, n_items), dtype=np.int16)
        ring[rows, cols] = -1  # the centre: never a ring of its own (it can still fill by popularity)
        count = np.zeros((n, n_items), dtype=np.float64)
        for r in range(1, self.max_rings + 1):
            flow = (frontier @ self.graph).tocoo()
            new = ring[flow.row, flow.col] == 0
            rr, cc = flow.row[new], flow.col[new]
            if not len(rr):
                break
            ring[rr, cc] = r
            count[rr, cc] = flow.data[new]
            frontier = sp.csr_matrix((np.ones(len(rr)), (rr, cc)), shape=(n, n_items))
        return ring, count

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Ring r's items score in [2 (max_rings + 1 - r), that + 1] (the within-ring order inside), unreached items
        their popularity in [0, 1]: the rings never mix and popularity only fills."""
        ring, count = self.rings(histories)
        within = np.zeros(ring.shape)
        if self.within != "count":
            last = np.array([h[-1] for h in histories], dtype=np.int64)
            within = (self.embeddings[last] @ self.embeddings.T + 1) / 2  # cosine in [0, 1]
        if self.within != "similarity":
            counted = count / (1 + count)  # monotone in the count, in [0, 1)
            within = counted if self.within == "count" else (1 - self.count_weight) * within + self.count_weight * counted
        return np.where(ring > 0, 2.0 * (self.max_rings + 1 - ring) + within, self.popularity[None, :])
