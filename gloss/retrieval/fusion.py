"""Turn several retrieved lists per user (one per query, e.g. one per beam) into one ranking: `fuse` merges hit lists,
`retrieve_and_fuse` searches each user's query texts first (a generator's titles, a file's generations).

Modes:
- top1_per_query (GLoSS): position j*q + i holds the j-th hit of query i, so the first q positions are
  each query's top-1 in query (beam) order; an item already placed keeps its first position.
- rrf: reciprocal rank fusion, sum_i 1 / (rrf_k + rank_i(item)).
- max_score / sum_score: an item's best / summed retrieval score over the queries.
Equal fused scores are ordered by the shared tie rule (gloss.models.base.tie_rank), never by the order hits arrived.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from gloss.models.base import tie_sorted
from gloss.retrieval.base import Retriever

FUSION_MODES = ("top1_per_query", "rrf", "max_score", "sum_score")


def fuse(
    ids: np.ndarray,
    scores: np.ndarray,
    k: int,
    mode: str = "top1_per_query",
    seen: Sequence[np.ndarray] | None = None,
    rrf_k: float = 60.0,
    query_weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """ids, scores: [n_users, n_queries, depth] (-1 = no hit). Returns ([n, k] items, [n, k] scores), -1 padded."""
    if mode not in FUSION_MODES:
        raise ValueError(f"fusion mode must be one of {FUSION_MODES}, got {mode!r}")
    n, q, depth = ids.shape
    weights = np.ones(q) if query_weights is None else np.asarray(query_weights, dtype=float)
    out_ids = np.full((n, k), -1, dtype=np.int64)
    out_scores = np.zeros((n, k), dtype=np.float32)
    for u in range(n):
        banned = set(seen[u].tolist()) if seen is not None else set()
        if mode == "top1_per_query":
            ranked: dict[int, float] = {}
            for j in range(depth):
                for i in range(q):
                    item = int(ids[u, i, j])
                    if item >= 0 and item not in banned and item not in ranked:
                        ranked[item] = float(q * depth - (j * q + i))
            order = list(ranked.items())
        else:
            acc: dict[int, float] = {}
            for i in range(q):
                for j in range(depth):
                    item = int(ids[u, i, j])
                    if item < 0 or item in banned:
                        continue
                    if mode == "rrf":
                        acc[item] = acc.get(item, 0.0) + weights[i] / (rrf_k + j + 1)
                    elif mode == "max_score":
                        acc[item] = max(acc.get(item, -np.inf), weights[i] * float(scores[u, i, j]))
                    else:
                        acc[item] = acc.get(item, 0.0) + weights[i] * float(scores[u, i, j])
            items = np.fromiter(acc, dtype=np.int64, count=len(acc))
            values = np.fromiter(acc.values(), dtype=np.float64, count=len(acc))
            order = [(int(items[i]), values[i]) for i in tie_sorted(items, values)]
        for pos, (item, s) in enumerate(order[:k]):
            out_ids[u, pos], out_scores[u, pos] = item, s
    return out_ids, out_scores


def retrieve_and_fuse(retriever: Retriever, queries: list[list[str]], k: int, mode: str, depth: int,
                      seen: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per user, search each of its query texts (users with fewer queries are padded with empty ones) and fuse the
    hit lists into [n, k] items and scores. Each query fetches `depth` hits (top1_per_query: at most k), and at least
    enough for the queries together to fill k places; `seen`: per user, items never ranked (None: no filter)."""
    q = max(len(row) for row in queries)
    flat = [row[i] if i < len(row) else "" for row in queries for i in range(q)]
    depth = min(k, depth) if mode == "top1_per_query" else depth
    depth = max(depth, math.ceil(k / q))
    ids, scores = retriever.search_unique(flat, depth)
    ids, scores = ids.reshape(len(queries), q, depth), scores.reshape(len(queries), q, depth)
    return fuse(ids, scores, k, mode, seen)
