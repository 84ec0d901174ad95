"""Dense retrieval: a sentence-transformers encoder, L2-normalised embeddings, exact FAISS inner product.

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
from gloss.retrieval.base import Retriever
from gloss.retrieval.encoders import encoder_identity, resolve_encoder

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)


class DenseRetriever(Retriever):
    def __init__(
        self,
        encoder: str,
        query_prefix: str,
        passage_prefix: str,
        batch_size: int,
        cache_dir: str,
        device: str | None,
        name: str = "dense",
    ):
        self.encoder, self.query_prefix, self.passage_prefix = encoder, query_prefix, passage_prefix
        self.batch_size, self.device, self.name = batch_size, device, name
        self.cache_dir = Path(cache_dir).expanduser()
        self._model = None
        self._index: faiss.Index | None = None

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
        emb = self.model.encode(
            [prefix + t for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > 2000,
        ).astype(np.float32)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, emb)

        atomic_write(path, write)
        return emb

    def index(self, texts: list[str]) -> None:
        import faiss  # here, not at import: BM25-only installs (and GPU images) need not have it

        emb = self.embed(texts, self.passage_prefix, "catalog")
        self._index = faiss.IndexFlatIP(emb.shape[1])
        self._index.add(emb)

    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None, "call index() before search()"
        emb = self.embed(queries, self.query_prefix, "query")
        scores, ids = self._index.search(emb, k)
        return ids.astype(np.int64), scores
