"""Dense search in blocks (gloss.retrieval.dense.search_in_blocks): the same hits as one FAISS call, and progress in
the log while a large query set is searched (issue 25: a line at least every 30 s)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from gloss import progress
from gloss.retrieval import dense


def embeddings(n: int, seed: int) -> np.ndarray:
    emb = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    emb[::7] = emb[-1]  # repeated rows: tied scores across the cut, searched again deeper
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


@pytest.mark.parametrize("n_queries", [1, 19, 100, 1003])
def test_blocks_give_the_hits_of_one_search(monkeypatch, n_queries):
    index = dense.build_index(embeddings(500, 0), {"type": "flat"})
    queries = embeddings(n_queries, 1)
    whole = dense.ranked_search(index, queries, 10)
    monkeypatch.setattr(dense, "SEARCH_BLOCK", 64)
    blocked = dense.ranked_search(index, queries, 10)
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_array_equal(whole[1], blocked[1])


def test_a_short_last_block_joins_the_one_before(monkeypatch):
    calls = []

    class Recording:
        def search(self, emb, depth):
            calls.append(len(emb))
            return np.zeros((len(emb), depth), dtype=np.float32), np.zeros((len(emb), depth), dtype=np.int64)

    monkeypatch.setattr(dense, "SEARCH_BLOCK", 64)
    dense.search_in_blocks(Recording(), np.zeros((64 * 3 + 5, 4), dtype=np.float32), 3)
    assert calls == [64, 64, 69]  # 5 < FAISS's BLAS threshold (20): never a call of its own


def test_searching_logs_progress(monkeypatch, caplog):
    monkeypatch.setattr(dense, "SEARCH_BLOCK", 64)
    monkeypatch.setattr(progress, "DEFAULT_INTERVAL_S", 0.0)
    index = dense.build_index(embeddings(300, 0), {"type": "flat"})
    with caplog.at_level(logging.INFO, logger="gloss.progress"):
        dense.ranked_search(index, embeddings(400, 2), 5)
    assert any(r.getMessage().startswith("search: ") and "queries" in r.getMessage() for r in caplog.records)
