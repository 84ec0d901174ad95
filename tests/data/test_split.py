from pathlib import Path

import numpy as np
import pytest

from gloss.data import load_dataset, split_leave_one_out
from gloss.data.readers import read_offline
from gloss.data.split import preprocess


def test_preprocess_drops_untitled_items_and_short_users(tiny_root: Path):
    raw = read_offline(tiny_root / "amazon2014" / "tiny")
    catalog, users, seqs = preprocess(raw, min_user_interactions=3)
    assert "B99999" not in catalog.item_ids
    assert all(len(s) >= 3 for s in seqs)
    assert catalog.texts[0].startswith("Title: ")


def test_split_follows_gloss_protocol():
    seqs = [np.arange(10 * u, 10 * u + n) for u, n in enumerate([3, 5, 8, 4] * 10)]
    split = split_leave_one_out([f"u{i}" for i in range(40)], seqs, val_fraction=0.05, seed=42)
    assert len(split.val_users) == 2  # int(0.05 * 40)
    val = set(split.val_users.tolist())
    for u, cut in split.train_examples:
        assert cut == len(seqs[u]) - (3 if u in val else 2)
    test = split.test_examples()
    assert np.array_equal(split.targets(test), [s[-1] for s in seqs])
    assert all(len(h) == len(s) - 1 for h, s in zip(split.histories(test), seqs))
    assert np.array_equal(split.targets(split.val_examples()), [seqs[u][-2] for u in split.val_users])


def test_all_prefixes_never_trains_on_held_out_items():
    seqs = [np.arange(n) + 100 * i for i, n in enumerate([5, 7, 3, 9] * 10)]
    split = split_leave_one_out([str(i) for i in range(40)], seqs, all_prefixes=True)
    val = set(split.val_users.tolist())
    for u, cut in split.train_examples:
        assert 1 <= cut <= len(seqs[u]) - (3 if u in val else 2)
    assert len(split.train_examples) == sum(len(s) - (3 if u in val else 2) for u, s in enumerate(seqs))
    for u, s in enumerate(split.train_sequences()):
        assert len(s) == len(seqs[u]) - (2 if u in val else 1)


def test_cache_is_keyed_by_content(tiny_root: Path, tmp_path: Path):
    kw = dict(name="tiny", data_dir=str(tiny_root), cache_dir=str(tmp_path / "cache"), power_min_length=None)
    first = load_dataset(**kw)
    assert load_dataset(**kw).stats() == first.stats()
    path = tiny_root / "amazon2014" / "tiny" / "user_sequence.txt"
    path.write_text(path.read_text() + "NEWUSER B00000 B00001 B00002\n")
    assert load_dataset(**kw).stats()["users"] == first.stats()["users"] + 1
    assert len(list((tmp_path / "cache" / "data").glob("*.pkl"))) == 2


@pytest.mark.data
def test_beauty_counts_equal_glosss(shared_data_dir: Path, tmp_path: Path):
    data = load_dataset("beauty", str(shared_data_dir), str(tmp_path), power_min_length=None)
    assert data.stats() == {
        "users": 22363, "items": 12094, "interactions": 198371, "val_users": 1118, "train_examples": 22363, "test_examples": 22363,
        "segment_cold": 7180, "segment_regular": 12996, "segment_power": 2187,
    }
    assert data.segment_thresholds == (5, 14.0)


@pytest.mark.data
@pytest.mark.parametrize("name,users,items,interactions", [("toys", 19395, 11865, 166738), ("sports", 35597, 18267, 295093)])
def test_toys_sports_counts(shared_data_dir: Path, tmp_path: Path, name, users, items, interactions):
    stats = load_dataset(name, str(shared_data_dir), str(tmp_path)).stats()
    assert (stats["users"], stats["items"], stats["interactions"]) == (users, items, interactions)
