"""dataset.min_val_users: a floor on the validation users where 5 % of a small dataset is too few (issue 27 item 6)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from gloss.data import split_leave_one_out
from gloss.errors import GlossError


def users(n: int) -> tuple[list[str], list[np.ndarray]]:
    return [f"u{u}" for u in range(n)], [np.arange(u % 7, u % 7 + 5) for u in range(n)]


def test_the_floor_lifts_a_small_datasets_validation_users_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="gloss.data.split"):
        split = split_leave_one_out(*users(940), val_fraction=0.05, min_val_users=200)
    assert len(split.val_users) == 200 and "dataset.min_val_users=200" in caplog.text  # 5 % would be 47
    assert len(split_leave_one_out(*users(940), val_fraction=0.05, min_val_users=500).val_users) == 470  # half


def test_above_the_floor_nothing_changes(caplog):
    plain = split_leave_one_out(*users(22_000), val_fraction=0.05)
    with caplog.at_level(logging.INFO, logger="gloss.data.split"):
        floored = split_leave_one_out(*users(22_000), val_fraction=0.05, min_val_users=500)
    assert np.array_equal(plain.val_users, floored.val_users) and "min_val_users" not in caplog.text
    assert len(split_leave_one_out(*users(940), val_fraction=0.0, min_val_users=500).val_users) == 0  # 0 stays 0


def test_a_bad_floor_names_the_key():
    with pytest.raises(GlossError, match="^dataset.min_val_users=-1"):
        split_leave_one_out(*users(10), min_val_users=-1)
