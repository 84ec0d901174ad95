"""Dense retrieval: a sentence-transformers encoder, L2-normalised embeddings, FAISS inner product: exact
(IndexFlatIP, the default) or approximate (`search_index.type`: hnsw or ivf, for catalogs of 10^5+ items; their recall
against exact is measured by tests/retrieval/test_ann.py). Hits are ordered by the shared tie rule
(gloss.models.base): equal scores by the fixed permutation of item indices, all tied items at the k-th score taken into
account, so a query's top hits do not depend on how many were asked for.

Embeddings (catalog and queries alike) are cached on disk under a key of encoder + prefix + the texts,
so an unchanged catalog is never encoded twice. A local encoder folder enters the key by its contents, so new
weights under the same path are never served stale embeddings; an unreadable entry is deleted and re-encoded.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gloss.cache import atomic_write, load_entry, texts_key
from gloss.errors import GlossError
from gloss.models.base import tie_sorted
from gloss.progress import Progress
from gloss.retrieval.base import Retriever
from gloss.retrieval.encoders import encode_texts, encoder_identity, resolve_encoder

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)
INDEX_TYPES = ("flat", "hnsw", "ivf")


class DenseRetriever(Retriever):
    def __init__(
        self,
        encoder: str,
        query_prefix: str,
        passage_prefix: str,
        batch_size: int,
        cache_dir: str,
        device: str | None,
        search_index: dict | None,
        name: str = "dense",
    ):
        if search_index is not None and search_index.get("type") not in INDEX_TYPES:
            raise GlossError(f"retriever.search_index.type must be one of {', '.join(INDEX_TYPES)}, "
                             f"got {search_index.get('type')!r}")
        self.search_index = search_index or {"type": "flat"}  # None: exact (an encoder used only to embed)
        self.encoder, self.query_prefix, self.passage_prefix = encoder, query_prefix, passage_prefix
        self.batch_size, self.device, self.name = batch_size, device, name
        self.cache_dir = Path(cache_dir).expanduser()
        self._model = None
        self._index: faiss.Index | None = None
        self._catalog: dict[str, int] = {}  # indexed text -> row, when queries may reuse the catalog's embeddings
        self._catalog_emb: np.ndarray | None = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_encoder(self.encoder, self.cache_dir), device=self.device)
        return self._model

    def embed(self, texts: list[str], prefix: str, what: str) -> np.ndarray:
        key = texts_key("emb-v1", encoder_identity(self.encoder), prefix, texts=texts)
        path = self.cache_dir / "embeddings" / f"{key}.npy"

        def load(entry: Path) -> np.ndarray:
            emb = np.load(entry)
            if emb.ndim != 2 or emb.shape[0] != len(texts):
                raise ValueError(f"shape {emb.shape}, expected ({len(texts)}, dim)")
            return emb

        if (emb := load_entry(path, load)) is not None:
            log.info("%s embeddings: cached (%s)", what, path.name)
            return emb
        log.info("encoding %d %s texts with %s", len(texts), what, self.encoder)
        emb = encode_texts(self.model, [prefix + t for t in texts], self.batch_size, what)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, emb)

        atomic_write(path, write)
        return emb

    def index(self, texts: list[str]) -> None:
        emb = self.embed(texts, self.passage_prefix, "catalog")
        self._index = build_index(emb, self.search_index)
        if self.query_prefix == self.passage_prefix:  # a catalog text as a query is embedded as in the catalog
            self._catalog, self._catalog_emb = {t: i for i, t in enumerate(texts)}, emb

    def query_embeddings(self, queries: list[str]) -> np.ndarray:
        """Catalog texts reuse their catalog rows (same prefix), so LIS's queries are never encoded; others are
        embedded (and cached)."""
        rows = [self._catalog.get(q) for q in queries]
        if self._catalog_emb is not None and queries and None not in rows:
            return self._catalog_emb[rows]
        return self.embed(queries, self.query_prefix, "query")

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None, "call index() before search()"
        return ranked_search(self._index, self.query_embeddings(queries), k)


def build_index(emb: np.ndarray, settings: dict) -> "faiss.Index":
    """The FAISS inner-product index `settings` names (conf/retriever/dense.yaml `search_index`), holding `emb`."""
    import faiss  # here, not at import: BM25-only installs (and GPU images) need not have it

    dim, kind = emb.shape[1], settings["type"]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction, index.hnsw.efSearch = settings["hnsw_ef_construction"], settings["hnsw_ef_search"]
    else:
        nlist = settings["ivf_nlist"] or max(1, min(len(emb) // 39, int(4 * np.sqrt(len(emb)))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(emb)
        index.nprobe = settings["ivf_nprobe"]
    log.info("search index: %s over %d items", kind, len(emb))
    index.add(emb)
    return index


def ranked_search(index: "faiss.Index", emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's top-k hits (ids, scores) under the tie rule: a query whose hits tie across the cut is searched
    again twice as deep until every item at its k-th score is in, then hits are sorted by (score desc, tie rank).
    Missing hits (k beyond the catalog, an approximate index's short lists) are id -1, score -inf."""
    ids = np.full((len(emb), k), -1, dtype=np.int64)
    scores = np.full((len(emb), k), -np.inf, dtype=np.float32)
    k = min(k, index.ntotal)
    pending, depth = np.arange(len(emb)), min(k + 1, index.ntotal)
    while k and len(pending):
        s, i = search_in_blocks(index, emb[pending], depth)
        cut = (i[:, -1] >= 0) & (s[:, -1] == s[:, k - 1]) & (depth < index.ntotal)
        s = np.where(i >= 0, s, -np.inf)
        order = tie_sorted(np.maximum(i, 0), s)[:, :k]
        done = pending[~cut]
        ids[done, :k] = np.take_along_axis(i, order, axis=1)[~cut]
        scores[done, :k] = np.take_along_axis(s, order, axis=1)[~cut]
        pending, depth = pending[cut], min(2 * depth, index.ntotal)
    return ids, scores


SEARCH_BLOCK = 4 * 4096  # queries per FAISS call, a multiple of its query block (distance_compute_blas_query_bs)


def search_in_blocks(index: "faiss.Index", emb: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """index.search over `emb` in blocks of SEARCH_BLOCK queries, with a progress line every 30 s (a 50x catalog's
    210k queries are minutes). Blocks are whole multiples of FAISS's own query blocks, and the last one is never
    below its BLAS threshold, so every query is scored by the same kernel calls as in one search."""
    import faiss

    n = len(emb)
    starts = list(range(0, n, SEARCH_BLOCK))
    if len(starts) > 1 and n - starts[-1] < faiss.cvar.distance_compute_blas_threshold:
        starts.pop()  # a short tail joins the block before it
    bounds = list(zip(starts, starts[1:] + [n]))
    scores, ids = np.empty((n, depth), dtype=np.float32), np.empty((n, depth), dtype=np.int64)
    with Progress(n, "search", unit="queries") as progress:
        for a, b in bounds:
            scores[a:b], ids[a:b] = index.search(emb[a:b], depth)
            progress.update(b - a)
    return scores, ids
