"""The Retriever interface: index a catalog's texts once, then map batches of query texts to item indices."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Retriever(ABC):
    """`index(texts)` then `search(queries, k)` -> (item indices [n, k], scores [n, k]); -1 pads missing hits."""

    name: str = "retriever"

    @abstractmethod
    def index(self, texts: list[str]) -> None: ...

    @abstractmethod
    def search(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def search_unique(self, queries: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search each distinct query once (LIS and beam search repeat many queries)."""
        unique, inverse = np.unique(np.asarray(queries, dtype=object), return_inverse=True)
        ids, scores = self.search(list(unique), k)
        return ids[inverse], scores[inverse]
