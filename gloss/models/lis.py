"""Last-Item-Search (GLoSS baseline): the last history item's title is the query; no training."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gloss.data import GlossData
from gloss.models.base import Ranking, Recommender, RunContext
from gloss.retrieval import Retriever, fuse


class LastItemSearch(Recommender):
    name = "lis"
    uses_retriever = True

    def __init__(self, retriever: Retriever, exclude_seen: bool = False, extra_depth: int = 50):
        self.retriever, self.exclude_seen, self.extra_depth = retriever, exclude_seen, extra_depth
        self.texts: list[str] = []

    def fit(self, data: GlossData, ctx: RunContext) -> None:
        self.texts = data.catalog.texts
        self.retriever.index(self.texts)

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        depth = k + (self.extra_depth if self.exclude_seen else 0)
        ids, scores = self.retriever.search_unique([self.texts[h[-1]] for h in histories], depth)
        items, fused = fuse(ids[:, None], scores[:, None], k, "top1_per_query", histories if self.exclude_seen else None)
        return Ranking(items, fused)
