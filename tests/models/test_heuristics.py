from pathlib import Path

import numpy as np

from gloss.data import load_dataset
from gloss.models.base import top_k_scores
from tests.models.factory import make_model, make_retriever


def tiny(tiny_root: Path, tmp_path: Path):
    return load_dataset("tiny", str(tiny_root), str(tmp_path / "cache"))


def test_top_k_excludes_seen():
    scores = np.array([[0.1, 0.9, 0.5, 0.7]])
    assert top_k_scores(scores, 2).items.tolist() == [[1, 3]]
    assert top_k_scores(scores, 2, [np.array([1])]).items.tolist() == [[3, 2]]


def test_cooc_learns_the_item_cycle(tiny_root: Path, tmp_path: Path):
    data = tiny(tiny_root, tmp_path)
    model = make_model("cooc", symmetric=False, history_items=1)
    model.fit(data)
    ex = data.split.test_examples()
    hist = data.split.histories(ex)
    ranking = model.recommend(hist, 5)
    ids = data.catalog.item_ids
    # the tiny data follows item i -> i+1, so the top item is the successor of the last one
    succ = [f"B{(int(ids[h[-1]][1:]) + 1) % 40:05d}" for h in hist]
    hits = np.mean([ids[r[0]] == s for r, s in zip(ranking.items, succ) if r[0] >= 0])
    assert hits > 0.9


def test_popularity_and_exclude_seen(tiny_root: Path, tmp_path: Path):
    data = tiny(tiny_root, tmp_path)
    model = make_model("popularity", exclude_seen=True)
    model.fit(data)
    hist = data.split.histories(data.split.test_examples())
    ranking = model.recommend(hist, 10)
    for h, row in zip(hist, ranking.items):
        assert not set(h.tolist()) & set(row.tolist())


def test_lis_query_is_last_title(tiny_root: Path, tmp_path: Path):
    data = tiny(tiny_root, tmp_path)
    model = make_model("lis", retriever=make_retriever("bm25"))
    model.fit(data)
    hist = data.split.histories(data.split.test_examples())
    ranking = model.recommend(hist, 5)
    assert all(row[0] == h[-1] for h, row in zip(hist, ranking.items))  # paper LIS: the item itself ranks first
    seen_free = make_model("lis", retriever=make_retriever("bm25"), exclude_seen=True)
    seen_free.fit(data)
    assert all(h[-1] not in row for h, row in zip(hist, seen_free.recommend(hist, 5).items))
