"""BM25 retrieval (GPT4Rec / GLoSS style) with bm25s, English stop words and Snowball stemming.

Top-k selection uses numpy, never JAX: bm25s imports JAX when it is installed and runs a JAX op at import, which on a
GPU machine pre-allocates 75 % of the GPU's memory (an LLaMA run then fails with out-of-memory) and would make the
tie order depend on which packages are installed. So JAX is kept on the CPU (unless the user set JAX_PLATFORMS) and
bm25s is imported only when a BM25 index is built.
"""
from __future__ import annotations

import os

import numpy as np
import Stemmer

from gloss.retrieval.base import Retriever


def _bm25s():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import bm25s

    return bm25s


class BM25Retriever(Retriever):
    def __init__(self, k1: float, b: float, method: str, stopwords: str, name: str = "bm25"):
        self.k1, self.b, self.method, self.stopwords, self.name = k1, b, method, stopwords, name
        self.stemmer = Stemmer.Stemmer("english")
        self._bm25 = None  # bm25s.BM25 once indexed
        self._n = 0

    def _tokenize(self, texts: list[str]):
        return _bm25s().tokenize(texts, stopwords=self.stopwords, stemmer=self.stemmer, show_progress=False)

    def index(self, texts: list[str]) -> None:
        self._bm25 = _bm25s().BM25(k1=self.k1, b=self.b, method=self.method)
        self._bm25.index(self._tokenize(texts), show_progress=False)
        self._n = len(texts)

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._bm25 is not None, "call index() before search()"
        k = min(k, self._n)
        ids, scores = self._bm25.retrieve(self._tokenize(queries), k=k, show_progress=False, n_threads=0,
                                          backend_selection="numpy")
        ids = np.asarray(ids, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        ids[scores <= 0] = -1  # no shared term: not a hit
        return ids, scores
