"""LastItemSearch: paper mode (one query), n_queries > 1 with each fusion mode, exclude_seen, bad config."""
from types import SimpleNamespace

import numpy as np
import pytest

from gloss.errors import GlossError
from gloss.models.base import tie_rank
from gloss.models.lis import LastItemSearch
from gloss.retrieval import Retriever
from tests.models.factory import make_model

# item i's title retrieves: itself first (as dense retrieval does), then its neighbours
NEIGHBOURS = {0: [0, 5, 6, 7], 1: [1, 6, 8, 9], 2: [2, 7, 9, 5], 3: [3, 4, 8, 6]}


class NeighbourRetriever(Retriever):
    def index(self, texts):
        self.texts = list(texts)

    def search(self, queries, k):
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row, q in enumerate(queries):
            hits = NEIGHBOURS.get(self.texts.index(q), [])[:k]
            ids[row, : len(hits)] = hits
        scores = np.where(ids >= 0, 1.0 - 0.1 * np.arange(k), 0.0).astype(np.float32)
        return ids, scores


def fitted(**kwargs) -> LastItemSearch:
    model: LastItemSearch = make_model("lis", retriever=NeighbourRetriever(), extra_depth=2, **kwargs)
    data = SimpleNamespace(catalog=SimpleNamespace(texts=[f"Title: item {i}" for i in range(10)]))
    model.fit(data)
    return model


HISTORIES = [np.array([3, 0, 1]), np.array([2])]


def test_paper_lis_is_the_last_items_hit_list():
    items = fitted().recommend(HISTORIES, 4).items
    assert items.tolist() == [NEIGHBOURS[1], NEIGHBOURS[2]]


def test_top1_per_query_interleaves_most_recent_first():
    items = fitted(n_queries=2).recommend(HISTORIES, 6).items
    assert items[0].tolist() == [1, 0, 6, 5, 8, 9]  # top-1 of item 1 then of item 0, then second hits; 6 only once
    assert items[1].tolist()[:4] == NEIGHBOURS[2]  # a one-item history has one query; padding adds nothing


def test_rrf_and_query_decay():
    items = fitted(n_queries=2, fusion="rrf").recommend(HISTORIES[:1], 3).items
    assert items[0, 0] == 6  # rank 2 for item 1 and rank 3 for item 0: the only item in both lists
    decayed = fitted(n_queries=2, fusion="rrf", query_decay=0.01).recommend(HISTORIES[:1], 3).items
    assert decayed[0].tolist() == [1, 6, 8]  # the older query barely counts


def test_exclude_seen_and_score_modes():
    for fusion in ("top1_per_query", "rrf", "max_score", "sum_score"):
        items = fitted(n_queries=3, fusion=fusion, exclude_seen=True).recommend(HISTORIES, 4).items
        assert not set(items[0].tolist()) & {3, 0, 1} and 2 not in items[1].tolist()
    summed = fitted(n_queries=3, fusion="sum_score").recommend(HISTORIES[:1], 4).items
    assert summed[0, 0] == 6  # in all three lists: the largest summed score
    best = fitted(n_queries=3, fusion="max_score").recommend(HISTORIES[:1], 4).items
    ties = sorted([1, 0, 3], key=lambda i: int(tie_rank(np.array([i]))[0]))
    assert best[0, :3].tolist() == ties  # the three self-hits share the top score: ordered by the tie rule


def test_bad_config_is_a_user_error():
    with pytest.raises(GlossError, match="fusion"):
        make_model("lis", retriever=NeighbourRetriever(), fusion="mean")
    with pytest.raises(GlossError, match="n_queries"):
        make_model("lis", retriever=NeighbourRetriever(), n_queries=0)
