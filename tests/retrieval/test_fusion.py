import numpy as np
import pytest

from gloss.retrieval import fuse


def test_top1_per_query_keeps_query_order_then_depth():
    ids = np.array([[[5, 1], [5, 2], [9, 3]]])  # 3 queries, depth 2
    scores = np.ones_like(ids, dtype=np.float32)
    items, _ = fuse(ids, scores, k=5)
    assert items.tolist() == [[5, 9, 1, 2, 3]]


def test_exclude_seen_and_padding():
    ids = np.array([[[5, 1, -1]]])
    items, _ = fuse(ids, np.ones((1, 1, 3), np.float32), k=3, seen=[np.array([5])])
    assert items.tolist() == [[1, -1, -1]]


@pytest.mark.parametrize("mode,expected", [("rrf", [2, 1, 3]), ("max_score", [3, 1, 2]), ("sum_score", [3, 2, 1])])
def test_score_fusions(mode, expected):
    ids = np.array([[[1, 2], [2, 3]]])
    scores = np.array([[[0.5, 0.4], [0.45, 0.9]]], dtype=np.float32)
    items, _ = fuse(ids, scores, k=3, mode=mode)
    assert items[0].tolist() == expected


def test_unknown_mode():
    with pytest.raises(ValueError):
        fuse(np.zeros((1, 1, 1), np.int64), np.zeros((1, 1, 1)), 1, mode="nope")
