"""Issue 25: no dense [users x items] ranking block exceeds eval.rank_memory_mb (float32 scores + int64 tie keys)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

import gloss.models.base as base
from gloss.models.base import BYTES_PER_ENTRY, ScoringRecommender, configure_ranking, top_k_scores
from tests.models.factory import build


class Recording(ScoringRecommender):
    """Records each scoring batch's dense block; `known` says whether it declares n_items."""

    exclude_seen = True

    def __init__(self, n_items: int, known: bool):
        self.width, self.blocks = n_items, []
        if known:
            self.n_items = n_items

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        block = np.cos(np.outer([len(h) for h in histories], np.arange(self.width))).astype(np.float32)
        self.blocks.append(block.shape)
        return block


@pytest.fixture
def budget():
    yield configure_ranking
    configure_ranking(None)


@pytest.mark.parametrize("known", [True, False])
def test_scoring_batches_fit_the_budget_and_rank_as_one_block(budget, known):
    budget(1)  # 1 MiB: 17 users of 5000 items
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, 5000, size=rng.integers(1, 9)) for _ in range(100)]
    model = Recording(5000, known)
    got = model.recommend(histories, 20)
    assert max(rows for rows, _ in model.blocks) * 5000 * BYTES_PER_ENTRY <= 2**20
    assert sum(rows for rows, _ in model.blocks) == 100 and max(rows for rows, _ in model.blocks) == 17
    want = top_k_scores(model.score(histories), 20, histories)
    np.testing.assert_array_equal(got.items, want.items)


def test_sparse_models_take_batches_of_the_same_size(budget, monkeypatch):
    budget(1)
    model = build("model", "popularity", {"exclude_seen": True})
    model.counts = np.arange(5000, dtype=np.float32) % 7
    shapes = []
    real = base.sparse_top_k

    def recording(increments, *args):
        shapes.append(increments.shape)
        return real(increments, *args)

    monkeypatch.setattr(base, "sparse_top_k", recording)
    model.recommend([np.array([1, 2])] * 40, 10)
    assert [rows for rows, _ in shapes] == [17, 17, 6]


def test_no_budget_keeps_the_model_batch_size():
    assert base.RANK_MEMORY_MB is None
    model = Recording(50, known=True)
    model.batch_size = 8
    model.recommend([np.array([1])] * 20, 5)
    assert [rows for rows, _ in model.blocks] == [8, 8, 4]


def test_rank_memory_mb_is_checked(tmp_path):
    from hydra import compose, initialize_config_dir

    from gloss.errors import GlossError
    from gloss.validation import validate_config
    from tests.models.factory import CONF

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=["model=cooc", "eval.rank_memory_mb=0", f"paths.data_dir={tmp_path}",
                                           f"paths.cache_dir={tmp_path}"])
    with pytest.raises(GlossError, match="eval.rank_memory_mb"):
        validate_config(cfg)
