"""Last-Item-Search (GLoSS baseline): the last history item's title is the query; no training.

`n_queries` > 1 turns the last n items' titles into n queries (most recent first) whose hit lists are merged
by `fusion` (gloss.retrieval.fuse), so the multi-query fusion modes a generator uses can be measured without one.
n_queries=1 with fusion=top1_per_query is the paper's LIS.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.models.base import Ranking, Recommender
from gloss.retrieval import FUSION_MODES, Retriever, fuse


class LastItemSearch(Recommender):
    name = "lis"
    uses_retriever = True

    def __init__(
        self,
        retriever: Retriever,
        exclude_seen: bool,
        extra_depth: int,
        n_queries: int,
        fusion: str,
        query_decay: float,
        rrf_k: float,
    ):
        if fusion not in FUSION_MODES:
            raise GlossError(f"model.fusion must be one of {', '.join(FUSION_MODES)}, got {fusion!r}")
        if n_queries < 1:
            raise GlossError(f"model.n_queries must be >= 1, got {n_queries}")
        self.retriever, self.exclude_seen, self.extra_depth = retriever, exclude_seen, extra_depth
        self.n_queries, self.fusion, self.query_decay, self.rrf_k = n_queries, fusion, query_decay, rrf_k
        self.texts: list[str] = []

    def fit(self, data: GlossData) -> None:
        self.texts = data.catalog.texts
        self.retriever.index(self.texts)

    def query_items(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[n, n_queries] catalog indices, most recent first; -1 where a history is shorter than n_queries."""
        out = np.full((len(histories), self.n_queries), -1, dtype=np.int64)
        for u, h in enumerate(histories):
            recent = h[-self.n_queries :][::-1]
            out[u, : len(recent)] = recent
        return out

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        """Only the distinct query items' titles are searched (each once); the dense retriever takes their embeddings
        from the catalog's whenever query and passage prefixes agree (MiniLM), so no query is encoded."""
        depth = k + (self.extra_depth if self.exclude_seen else 0)
        queries = self.query_items(histories)
        distinct = np.unique(queries[queries >= 0])
        hit_ids, hit_scores = self.retriever.search([self.texts[i] for i in distinct], depth)
        rows = np.searchsorted(distinct, queries).clip(max=max(len(distinct) - 1, 0))
        if not len(distinct):  # no history has an item: nothing to search
            hit_ids, hit_scores = np.full((1, depth), -1, dtype=np.int64), np.zeros((1, depth), dtype=np.float32)
        ids, scores = hit_ids[rows], hit_scores[rows]  # [n, n_queries, depth]
        ids[queries < 0] = -1
        weights = self.query_decay ** np.arange(self.n_queries)
        items, fused = fuse(
            ids, scores, k, self.fusion, histories if self.exclude_seen else None, rrf_k=self.rrf_k, query_weights=weights
        )
        return Ranking(items, fused)
