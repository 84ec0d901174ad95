"""Full-catalog ranking metrics from ranked lists: Recall@k, NDCG@k, MRR, per user and per segment.

With one relevant item per user, Recall@k = hit@k and NDCG@k = 1 / log2(rank + 2) when rank < k
(rank 0-based, first occurrence). MRR is 1 / (rank + 1) within the returned list (0 if absent).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEGMENTS = ("cold", "regular", "power")  # user segments by full sequence length (GlossData.segments)
KS = (5, 10)  # the cut-offs of Recall@k and NDCG@k


def metric_names(ks: tuple[int, ...] = KS) -> tuple[str, ...]:
    """The per-user metrics `per_user_metrics` computes, in its order: recall@k and ndcg@k for each k, then mrr."""
    return tuple(f"{m}@{k}" for k in ks for m in ("recall", "ndcg")) + ("mrr",)


METRIC_KEYS = metric_names()  # every metric a run reports (metrics.json, results tables, validation logs)


def target_ranks(items: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each user's target in its ranked list; -1 when absent."""
    hit = items == targets[:, None]
    found = hit.any(axis=1)
    return np.where(found, hit.argmax(axis=1), -1)


def per_user_metrics(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, np.ndarray]:
    found = ranks >= 0
    safe = np.where(found, ranks, 0)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        inside = found & (ranks < k)
        out[f"recall@{k}"] = inside.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(inside, 1.0 / np.log2(safe + 2), 0.0)
    out["mrr"] = np.where(found, 1.0 / (safe + 1), 0.0)
    return out


def mean_metrics(per_user: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float]:
    """Average of each per-user metric over `mask` (all users when None; 0.0 for an empty segment)."""
    if mask is None:
        return {m: float(v.mean()) for m, v in per_user.items()}
    return {m: float(v[mask].mean()) if mask.any() else 0.0 for m, v in per_user.items()}


@dataclass
class Evaluation:
    per_user: dict[str, np.ndarray]
    ranks: np.ndarray
    segments: np.ndarray  # segment name per user

    @property
    def overall(self) -> dict[str, float]:
        return mean_metrics(self.per_user)

    def by_segment(self) -> dict[str, dict]:
        out = {}
        for s in SEGMENTS:
            mask = self.segments == s
            out[s] = {**mean_metrics(self.per_user, mask), "n_users": int(mask.sum())}
        return out


def evaluate_ranking(items: np.ndarray, targets: np.ndarray, segments: np.ndarray, ks: tuple[int, ...] = KS) -> Evaluation:
    ranks = target_ranks(items, targets)
    return Evaluation(per_user_metrics(ranks, ks), ranks, segments)
