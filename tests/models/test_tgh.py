"""model=tgh on a planted graph: rings in order, the within-ring order (similarity, count), popularity fill."""
from __future__ import annotations

import numpy as np
import pytest

from gloss.data import Catalog, GlossData, split_leave_one_out
from gloss.errors import GlossError
from tests.models.factory import make_model, make_retriever

# training parts (the last item, 9, is each user's test target): edges 0->1 (twice), 1->3, 0->2, 2->4, 3->5, 6->6, 6->7
SEQUENCES = [[0, 1, 3, 9], [0, 1, 9], [0, 2, 4, 9], [3, 5, 9], [6, 6, 7, 9]]
COSINE_TO_0 = {0: 1.0, 1: 0.5, 2: 0.9, 3: 0.2, 4: 0.8}  # ring 1 by similarity: 2 before 1; ring 2: 4 before 3


class PlantedEmbeddings:
    """A dense retriever's `embed`: unit vectors at the planted cosines to item 0 (others orthogonal to it)."""

    passage_prefix = ""

    def embed(self, texts: list[str], prefix: str, what: str) -> np.ndarray:
        angles = np.arccos([COSINE_TO_0.get(i, 0.0) for i in range(len(texts))])
        return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def planted() -> GlossData:
    seqs = [np.array(s, dtype=np.int64) for s in SEQUENCES]
    users = [f"u{u}" for u in range(len(seqs))]
    catalog = Catalog([f"i{i}" for i in range(10)], [f"item {i}" for i in range(10)])
    return GlossData("planted", catalog, split_leave_one_out(users, seqs, val_fraction=0.0), (5, 7))


def top(history: list[int], k: int, **settings) -> list[int]:
    model = make_model("tgh", **{"retriever": PlantedEmbeddings(), **settings})
    model.fit(planted())
    return model.recommend([np.array(history, dtype=np.int64)], k).items[0].tolist()


def test_rings_in_order_similarity_inside_then_popularity():
    # ring 1 {1, 2} by cosine to 0, ring 2 {3, 4} by cosine, then popularity: 0 (3 training interactions), 6 (2)
    assert top([0], 6, max_rings=2, within="similarity") == [2, 1, 4, 3, 0, 6]


def test_max_rings_limits_the_search():
    # ring 2 not searched: 3 (popularity 2) fills before 4 (popularity 1)
    assert top([0], 4, max_rings=1, within="similarity")[:2] == [2, 1]
    ranked = top([0], 10, max_rings=1, within="similarity")
    assert ranked.index(3) < ranked.index(4)


def test_count_and_blend_order_inside_a_ring():
    assert top([0], 2, max_rings=1, within="count") == [1, 2]  # 0->1 twice, 0->2 once
    assert top([0], 2, max_rings=1, within="blend", count_weight=1.0) == [1, 2]
    assert top([0], 2, max_rings=1, within="blend", count_weight=0.0) == [2, 1]


def test_direction_and_centre():
    # 4 has no outgoing edge: popularity only; with both directions 2 is ring 1 and 0 ring 2 (4 itself is the centre)
    assert top([4], 1, max_rings=2, direction="out") == [0]
    both = top([4], 3, max_rings=2, direction="both")
    assert both[:2] == [2, 0]


def test_n_last_two_and_exclude_seen():
    ranked = top([0, 1], 4, n_last=2, max_rings=1, exclude_seen=True)
    assert set(ranked[:2]) == {2, 3} and not {0, 1} & set(ranked)


def test_similarity_needs_embeddings():
    with pytest.raises(GlossError, match="model.within=similarity"):
        make_model("tgh", retriever=make_retriever("bm25"), within="similarity")
    assert top([0], 2, retriever=make_retriever("bm25"), max_rings=1, within="count") == [1, 2]
