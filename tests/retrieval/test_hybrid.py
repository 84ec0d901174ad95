"""HybridRetriever: weighted RRF of two retrievers, checked against the formula; config composes nested _target_s."""
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gloss.errors import GlossError
from gloss.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, Retriever
from tests.models.factory import make_retriever


class FixedRetriever(Retriever):
    """Returns a fixed ranked list per query text; records the depth it was asked for."""

    def __init__(self, lists: dict[str, list[int]]):
        self.lists, self.asked, self.indexed = lists, [], None

    def index(self, texts):
        self.indexed = list(texts)

    def search(self, queries, k):
        self.asked.append(k)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row, q in enumerate(queries):
            hits = self.lists[q][:k]
            ids[row, : len(hits)] = hits
        return ids, np.where(ids >= 0, 1.0, 0.0).astype(np.float32)


def rrf(lists: list[list[int]], weights: list[float], rrf_k: float) -> dict[int, float]:
    out: dict[int, float] = {}
    for hits, w in zip(lists, weights):
        for rank, item in enumerate(hits, 1):
            out[item] = out.get(item, 0.0) + w / (rrf_k + rank)
    return out


def test_rrf_matches_formula_and_pads():
    dense = FixedRetriever({"q": [3, 1, 4, 5, 9], "r": [2, 7]})
    sparse = FixedRetriever({"q": [1, 5, 8], "r": []})  # BM25 can return fewer hits, or none
    hybrid = HybridRetriever(dense, sparse, weights=[1.0, 2.0], rrf_k=10.0, depth=4)
    hybrid.index(["a", "b"])
    assert dense.indexed == sparse.indexed == ["a", "b"]
    ids, scores = hybrid.search(["q", "r"], k=6)
    assert dense.asked == sparse.asked == [6]  # max(k, depth) hits from each side
    expected = rrf([[3, 1, 4, 5, 9, -1][:6], [1, 5, 8]], [1.0, 2.0], 10.0)
    expected = sorted(expected.items(), key=lambda kv: -kv[1])
    assert ids[0].tolist() == [item for item, _ in expected][:6]
    np.testing.assert_allclose(scores[0], [s for _, s in expected][:6], rtol=1e-6)
    assert ids[0, 0] == 1  # found by both sides beats dense's own top-1
    assert ids[1].tolist() == [2, 7, -1, -1, -1, -1] and scores[1, 2:].tolist() == [0, 0, 0, 0]


def test_weights_select_one_side():
    dense = FixedRetriever({"q": [3, 1, 4]})
    sparse = FixedRetriever({"q": [4, 3, 1]})
    def hybrid(weights):
        return make_retriever("hybrid", dense=dense, sparse=sparse, weights=weights, depth=3)

    assert hybrid([1, 0]).search(["q"], 3)[0][0].tolist() == [3, 1, 4]
    assert hybrid([0, 1]).search(["q"], 3)[0][0].tolist() == [4, 3, 1]
    with pytest.raises(GlossError, match="weights"):
        hybrid([1.0])


def test_hybrid_with_real_bm25_on_both_sides():
    texts = ["Title: red lipstick matte", "Title: blue nail polish", "Title: red nail polish", "Title: face cream"]
    hybrid = make_retriever("hybrid", dense=make_retriever("bm25"), sparse=make_retriever("bm25"), depth=4)
    hybrid.index(texts)
    ids, _ = hybrid.search(["red nail polish"], 2)
    assert ids[0, 0] == 2 and set(ids[0].tolist()) <= {0, 1, 2}


def test_config_composes_dense_and_bm25():
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=["retriever=hybrid", "retriever.weights=[0.5,2.0]", "paths.cache_dir=/tmp/unused"])
    retriever = instantiate(cfg.retriever)  # the dense encoder loads lazily, so nothing is downloaded here
    assert isinstance(retriever, HybridRetriever)
    assert isinstance(retriever.dense, DenseRetriever) and isinstance(retriever.sparse, BM25Retriever)
    assert retriever.weights == [0.5, 2.0]


def test_config_swaps_the_dense_side():
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=["retriever=hybrid", "retriever@retriever.dense=e5_small", "paths.cache_dir=/tmp/unused"])
    assert cfg.retriever.dense.encoder == "intfloat/e5-small-v2" and cfg.retriever.dense.query_prefix == "query: "
    assert cfg.retriever.sparse._target_.endswith("BM25Retriever")
