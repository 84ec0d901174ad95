import numpy as np
import pytest
from ranx import Qrels, Run, evaluate

from gloss.eval import METRIC_KEYS, SEGMENTS, evaluate_ranking, per_user_metrics, target_ranks


def random_rankings(n_users=300, n_items=50, k=20, seed=0):
    rng = np.random.default_rng(seed)
    items = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    targets = rng.integers(0, n_items, n_users)
    return items, targets


@pytest.mark.slow  # ranx compiles its metrics with numba on first use (~20 s)
def test_matches_ranx():
    items, targets = random_rankings()
    qrels = Qrels({f"u{u}": {f"i{t}": 1} for u, t in enumerate(targets)})
    run = Run({f"u{u}": {f"i{i}": float(len(row) - r) for r, i in enumerate(row)} for u, row in enumerate(items)})
    names = ["recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr"]
    expected = evaluate(qrels, run, names)
    ours = evaluate_ranking(items, targets, np.array(["regular"] * len(targets))).overall
    for m in names:
        assert ours[m] == pytest.approx(expected[m], abs=1e-9), m


def test_first_occurrence_and_padding():
    items = np.array([[3, 3, 7, -1], [1, 2, 4, 5], [-1, -1, -1, -1]])
    ranks = target_ranks(items, np.array([7, 9, 0]))
    assert ranks.tolist() == [2, -1, -1]
    m = per_user_metrics(ranks, ks=(1, 3))
    assert m["recall@1"].tolist() == [0, 0, 0] and m["recall@3"].tolist() == [1, 0, 0]
    assert m["ndcg@3"][0] == pytest.approx(1 / np.log2(4))
    assert m["mrr"][0] == pytest.approx(1 / 3)


def test_the_reported_metrics_are_the_per_user_ones_in_their_order():
    assert tuple(per_user_metrics(np.array([0, -1]))) == METRIC_KEYS == ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr")


def test_segments_partition_users():
    items, targets = random_rankings(n_users=9)
    segments = np.array(list(SEGMENTS) * 3)
    ev = evaluate_ranking(items, targets, segments)
    by = ev.by_segment()
    assert tuple(by) == SEGMENTS
    assert sum(v["n_users"] for v in by.values()) == 9
    weighted = sum(by[s]["recall@10"] * by[s]["n_users"] for s in by) / 9
    assert weighted == pytest.approx(ev.overall["recall@10"])
