"""Issue 26: tied scores are ordered by one rule independent of the list depth (eval.k), of the target and of the
run seed: higher score first, ties by a fixed seeded permutation of item indices (gloss.models.base)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gloss.models.base import ScoringRecommender, item_of_rank, ranking_keys, tie_rank, top_k_indices, top_k_scores


class Tied(ScoringRecommender):
    """Scores from a fixed table with many ties (few distinct values)."""

    def __init__(self, table: np.ndarray, exclude_seen: bool):
        self.table, self.exclude_seen = table, exclude_seen

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return self.table[[len(h) for h in histories]]


def tied_table(n_users: int = 40, n_items: int = 3000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, size=(n_users, n_items)).astype(np.float32)


def test_top_10_is_the_same_at_every_depth():
    scores = tied_table()
    top = {k: top_k_scores(scores, k).items[:, :10] for k in (10, 100, 1000, 3000)}
    for k in (100, 1000, 3000):
        np.testing.assert_array_equal(top[10], top[k])


def test_recommend_top_10_is_the_same_at_every_depth_with_and_without_seen():
    table = tied_table()
    histories = [np.arange(u, dtype=np.int64) * 7 % 3000 for u in range(1, 40)]
    for exclude_seen in (False, True):
        model = Tied(table, exclude_seen)
        ten = model.recommend(histories, 10)
        deep = model.recommend(histories, 1000)
        np.testing.assert_array_equal(ten.items, deep.items[:, :10])
        np.testing.assert_array_equal(ten.scores, deep.scores[:, :10])


def test_ties_follow_a_fixed_permutation_not_the_item_index():
    """All-equal rows: the order is the same for every row and is not 0, 1, 2, ... (a seeded permutation)."""
    ranking = top_k_scores(np.zeros((3, 500), dtype=np.float32), 500)
    assert (ranking.items == ranking.items[0]).all()
    assert sorted(ranking.items[0].tolist()) == list(range(500))
    assert ranking.items[0].tolist() != list(range(500))


def test_tie_rank_is_a_permutation_with_an_inverse():
    items = np.arange(2**20)
    ranks = tie_rank(items)
    assert len(np.unique(ranks)) == len(items) and ranks.min() >= 0 and ranks.max() < 2**31
    np.testing.assert_array_equal(item_of_rank(ranks), items)
    top = np.array([0, 2**31 - 1])
    np.testing.assert_array_equal(item_of_rank(tie_rank(top)), top)


def test_top_k_indices_keeps_float64_near_ties_apart_and_ties_by_the_rule():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 3, size=(20, 400)).astype(np.float64)
    scores[:, 7] = 2 + 1e-12  # above every 2.0 in float64, merged with them in float32
    float32_order = np.argsort(ranking_keys(scores.astype(np.float32), np.arange(400)), axis=1)
    rest = float32_order[float32_order != 7].reshape(20, 399)  # exact in float32 but for item 7
    for k in (1, 10, 100, 400):
        got = top_k_indices(scores, k)
        assert (got[:, 0] == 7).all()
        np.testing.assert_array_equal(got[:, 1:], rest[:, : k - 1])


def test_fusion_orders_equal_fused_scores_by_the_rule_not_arrival():
    from gloss.retrieval.fusion import fuse

    ids = np.array([[[5, 9, 2], [2, 9, 5]]])  # [1 user, 2 queries, depth 3]: every item's summed score ties at 1.0
    scores = np.array([[[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]], dtype=np.float32)
    reversed_ids = ids[:, ::-1]
    for mode in ("max_score", "sum_score"):
        got, _ = fuse(ids, scores, 3, mode)
        again, _ = fuse(reversed_ids, scores, 3, mode)
        want = sorted([5, 9, 2], key=lambda i: int(tie_rank(np.array([i]))[0]))
        assert got[0].tolist() == again[0].tolist() == want


def test_nan_ranks_last_and_negative_zero_ties_with_zero():
    scores = np.array([[np.nan, -0.0, 0.0, -1.0, np.inf, -np.inf, 1e-45, -1e-45]], dtype=np.float32)
    ranking = top_k_scores(scores, 8)
    zeros = sorted([1, 2], key=lambda i: int(tie_rank(np.array([i]))[0]))
    assert ranking.items[0, :6].tolist() == [-1, 6] + zeros + [7, 3]  # +inf is no score: -1 (as before)
    assert (ranking.items[0, 6:] == -1).all()


def full_sort_reference(scores: np.ndarray, k: int, histories: Sequence[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """The rule by definition: every item's ranking key, fully sorted; seen, NaN and -inf slots come out as item -1."""
    s = np.where(np.isnan(scores), -np.inf, scores).astype(np.float32)
    keys = ranking_keys(s, np.arange(s.shape[1]))
    order = np.argsort(keys, axis=1, kind="stable")[:, :k]
    items = np.where(np.take_along_axis(np.isfinite(s), order, axis=1), order, -1)
    if histories is not None:
        for row, h in enumerate(histories):
            seen = np.isin(np.arange(s.shape[1]), h)
            kept = [i for i in np.argsort(keys[row], kind="stable") if not seen[i]][:k]
            items[row] = -1
            items[row, : len(kept)] = [i if np.isfinite(s[row, i]) else -1 for i in kept]
    return items, np.where(items >= 0, np.take_along_axis(s, np.maximum(items, 0), axis=1), 0).astype(np.float32)


def test_the_short_list_top_k_equals_a_full_sort_on_tie_heavy_scores():
    """top_k_scores ranks a short list per row (torch.topk's k + slack); ties reaching past it, NaN, -inf, -0.0 and
    seen items give exactly the full sort's list."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        n, m = int(rng.integers(1, 20)), int(rng.integers(1, 300))
        scores = (rng.integers(-3, 4, size=(n, m)) * rng.choice([1.0, 0.5, 1e-3])).astype(np.float32)
        if trial % 3 == 0:
            scores[rng.random(scores.shape) < 0.1] = np.nan
        if trial % 5 == 0:
            scores[rng.random(scores.shape) < 0.2] = -np.inf
        if trial % 7 == 0:
            scores[rng.random(scores.shape) < 0.3] = -0.0
        if trial % 11 == 0:  # continuous scores: the short list is enough
            scores = rng.normal(size=(n, m)).astype(np.float32)
        k = int(rng.integers(1, m + 5))
        histories = [rng.choice(m, size=int(rng.integers(0, m + 1)), replace=False) for _ in range(n)] if trial % 2 else None
        got = top_k_scores(scores.copy(), k, histories)
        want_items, want_scores = full_sort_reference(scores, min(k, m), histories)
        np.testing.assert_array_equal(got.items, want_items, err_msg=f"trial {trial}")
        np.testing.assert_array_equal(got.scores, want_scores, err_msg=f"trial {trial}")


def test_top_k_scores_leaves_the_callers_scores_unchanged():
    scores = np.array([[np.nan, 1.0, 2.0, 0.5]], dtype=np.float32)
    before = scores.copy()
    top_k_scores(scores, 2, [np.array([2])])
    np.testing.assert_array_equal(scores, before)
