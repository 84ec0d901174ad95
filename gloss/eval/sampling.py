"""Which users a ranking evaluates when it is capped (eval.max_users, callbacks.ranking_eval.max_users)."""
from __future__ import annotations

import numpy as np

from gloss.errors import GlossError


def sample_examples(examples: np.ndarray, max_users: int | None, seed: int) -> np.ndarray:
    """A fixed random subset of `max_users` rows (file order kept), or all of them."""
    if max_users is None or max_users >= len(examples):
        return examples
    if max_users < 1:
        raise GlossError(f"max_users must be >= 1 or null, got {max_users}")
    keep = np.random.default_rng(seed).choice(len(examples), max_users, replace=False)
    return examples[np.sort(keep)]
