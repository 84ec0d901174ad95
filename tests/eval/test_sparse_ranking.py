"""Issue 25: co-occurrence and popularity rank from sparse candidates plus the popularity fallback, giving exactly
the Ranking (items and scores) of the dense scores under the tie rule, with and without exclude_seen."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from gloss.models.base import ranking_keys, sparse_top_k, top_k_scores
from gloss.models.cooc import CoOccurrence
from gloss.models.popularity import Popularity
from tests.models.factory import build


def fitted(model, n_items: int, seed: int):
    """A cooc / popularity model fit on random sequences over few items (many tied counts and scores)."""
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(0, n_items, size=rng.integers(2, 9)) for _ in range(200)]
    popularity = np.bincount(np.concatenate(sequences), minlength=n_items).astype(np.float32)
    if isinstance(model, CoOccurrence):
        from gloss.models.cooc import transition_matrix

        forward = transition_matrix(sequences, n_items, model.window)
        model.matrix = forward + model.backward_weight * forward.T.tocsr()
        model.popularity = popularity / popularity.max()
    else:
        model.counts = popularity
    return model


def dense(model, histories, k):
    return top_k_scores(model.score(histories), k, histories if model.exclude_seen else None)


@pytest.mark.parametrize("exclude_seen", [False, True])
@pytest.mark.parametrize("name", ["cooc", "popularity"])
@pytest.mark.parametrize("k", [1, 5, 40, 300])
def test_sparse_ranking_equals_dense(name, exclude_seen, k):
    n_items = 120
    model = fitted(build("model", name, {"exclude_seen": exclude_seen}), n_items, seed=k)
    rng = np.random.default_rng(1)
    histories = [rng.integers(0, n_items, size=rng.integers(1, 30)) for _ in range(57)]
    want = dense(model, histories, k)
    got = model.recommend(histories, k)
    assert model.sparse_scores(histories[:2]) is not None
    np.testing.assert_array_equal(got.items, want.items)
    np.testing.assert_array_equal(got.scores, want.scores)


def test_sparse_top_k_on_random_increments_with_ties():
    rng = np.random.default_rng(3)
    n, n_items = 30, 200
    increments = sp.random(n, n_items, density=0.05, random_state=4, format="csr",
                           data_rvs=lambda m: rng.integers(0, 3, size=m).astype(np.float64))
    base = rng.integers(0, 4, size=n_items).astype(np.float32)
    seen = [rng.integers(0, n_items, size=rng.integers(0, 50)) for _ in range(n)]
    order = np.argsort(ranking_keys(base, np.arange(n_items)))
    for k in (1, 10, 150, 200):
        for s in (None, seen):
            want = top_k_scores(increments.toarray() + base, k, s)
            got = sparse_top_k(increments, base, k, s, order)
            np.testing.assert_array_equal(got.items, want.items)
            np.testing.assert_array_equal(got.scores, want.scores)


def test_negative_votes_rank_densely():
    model = fitted(build("model", "cooc", {"backward_weight": -0.5, "exclude_seen": False}), 50, seed=0)
    model.nonnegative = False
    assert model.sparse_scores([np.array([1, 2])]) is None
    histories = [np.array([1, 2]), np.array([3])]
    np.testing.assert_array_equal(model.recommend(histories, 10).items, dense(model, histories, 10).items)
