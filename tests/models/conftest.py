"""Synthetic data for the ID models: a deterministic next-item rule a sequential model must learn."""
from __future__ import annotations

import numpy as np
import pytest

from gloss.data import Catalog, GlossData, split_leave_one_out


def rule_data(n_items: int = 30, n_users: int = 300, length: int = 8, seed: int = 0) -> GlossData:
    """Each user starts at a random item and then always buys item (i + 1) mod n_items."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    sequences = [np.array([(s + t) % n_items for t in range(length)], dtype=np.int64) for s in starts]
    user_ids = [f"u{u}" for u in range(n_users)]
    catalog = Catalog([f"i{i}" for i in range(n_items)], [f"item {i}" for i in range(n_items)])
    return GlossData("rule", catalog, split_leave_one_out(user_ids, sequences, val_fraction=0.1, seed=1), (5, 7))


@pytest.fixture(scope="session")
def rule() -> GlossData:
    return rule_data()
