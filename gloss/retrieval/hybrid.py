"""Hybrid retrieval: two retrievers (dense + BM25 by default) merged by weighted reciprocal rank fusion.

RRF needs only ranks, so cosine similarities and BM25 scores, which live on different scales, combine
without calibration: score(item) = sum_r weight_r / (rrf_k + rank_r(item)), rank 1-based.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gloss.errors import GlossError
from gloss.retrieval.base import Retriever
from gloss.retrieval.fusion import fuse


class HybridRetriever(Retriever):
    def __init__(
        self,
        dense: Retriever,
        sparse: Retriever,
        weights: Sequence[float],
        rrf_k: float,
        depth: int,
        name: str = "hybrid",
    ):
        if len(weights) != 2:
            raise GlossError(f"retriever.weights: expected [dense, sparse] weights, got {list(weights)}")
        self.dense, self.sparse, self.name = dense, sparse, name
        self.weights, self.rrf_k, self.depth = [float(w) for w in weights], rrf_k, depth

    def index(self, texts: list[str]) -> None:
        self.dense.index(texts)
        self.sparse.index(texts)

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each side returns max(k, depth) hits; an item found by both sides sums its two RRF terms."""
        depth = max(k, self.depth)
        ids = np.full((len(queries), 2, depth), -1, dtype=np.int64)
        scores = np.zeros((len(queries), 2, depth), dtype=np.float32)
        for side, retriever in enumerate((self.dense, self.sparse)):
            side_ids, side_scores = retriever.search(queries, depth)
            ids[:, side, : side_ids.shape[1]] = side_ids
            scores[:, side, : side_scores.shape[1]] = side_scores
        return fuse(ids, scores, k, "rrf", rrf_k=self.rrf_k, query_weights=self.weights)
