"""The Recommender interface every model implements: histories in, ranked item indices (and scores) out.

Evaluation, sweeps and fusion only ever see this interface.

The tie rule (issue 26), shared by every ranking gloss makes (ScoringRecommender, fusion, dense search results, a
generator's top-m, the GLoSS+ ranker, the validation callback): higher score first; items with equal scores in the
order of one fixed seeded permutation of item indices (`tie_rank`, seed TIE_MULTIPLIERS), which depends on nothing
but the index: not on the list depth (eval.k), the target, the batch, the catalog or the run seed. So the top-10
of a ranking at eval.k=1000 is the ranking at eval.k=10. Scores are compared in float32 (ranking_keys packs a score's
order-preserving bits and the item's tie rank into one int64, so one partition gives a total order); top_k_indices
applies the same rule in the scores' own precision.
"""
from __future__ import annotations

import functools
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np
import scipy.sparse as sp
from omegaconf import DictConfig, OmegaConf

from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.progress import Progress

if TYPE_CHECKING:  # importing Lightning costs seconds; heuristic runs skip it
    import lightning as L

    from gloss.training import Fitter


@dataclass
class Ranking:
    items: np.ndarray  # [n, k] item indices, best first, -1 = empty slot
    scores: np.ndarray  # [n, k]


class Recommender(ABC):
    """Histories (arrays of catalog indices, oldest first) in, top-k item indices out."""

    name: str = "recommender"
    uses_retriever: bool = False  # True when results depend on the configured retriever
    exclude_seen: bool = False
    recipe: dict | None = None  # how it trains: its config node's `recipe` (build_model), for gloss.training

    def fit(self, data: GlossData) -> None:
        """Learn from `data.split` training examples (heuristics count; trained models are a TrainableRecommender)."""

    def fit_by(self, fitter: "Fitter", data: GlossData) -> "L.Trainer | None":
        """How a run fits this kind of model (gloss.training.Fitter asks the model): a heuristic counts."""
        self.fit(data)
        return None

    @abstractmethod
    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking: ...

    def examples_for(self, split: str, data: GlossData) -> np.ndarray:
        """The (user, cut) examples to evaluate on `split` (after fit): the split's own, unless the model brings its
        users (e.g. precomputed generations with users=file)."""
        return data.split.examples(split)

    def variants(self) -> dict[str, "Recommender"]:
        """Ablations of this fitted model (label -> recommender), ranked on the same users as the model itself into
        the run's ablation.json / ablation.md; none by default (GLoSS+: model.ablation)."""
        return {}

    def example_columns(self, histories: Sequence[np.ndarray]) -> list[dict[str, str]]:
        """Optional model-specific columns for the examples table logged to W&B (a handful of test users).

        One dict per history, column name -> text; a generator returns e.g. {"generated": "Title: a\\nTitle: b"}.
        The table always shows history, target, top-5 and the target's rank; the default adds nothing.
        """
        return [{} for _ in histories]


class TrainableRecommender(Recommender):
    """A model trained by the run's Lightning Trainer (gloss.training): built for a dataset, trained as
    `lightning_module` on the configured DataModule (`datamodule/`, given `datamodule_inputs()`), and saved into /
    reloaded from its run folder, so eval.py and predict.py need nothing but that folder."""

    def fit(self, data: GlossData) -> None:
        raise TypeError(f"{type(self).__name__} is trained by gloss.training.Fitter, not fit()")

    def fit_by(self, fitter: "Fitter", data: GlossData) -> "L.Trainer":
        """Trained with its recipe under the run's Trainer overrides (or reloaded from a saved run)."""
        return fitter.train(self, data)

    @abstractmethod
    def build_for(self, data: GlossData, seed: int, run_dir: Path | None = None) -> None:
        """Create the network(s) for `data`'s catalog: at random (seeded), or with `run_dir` the weights saved there."""

    @property
    @abstractmethod
    def lightning_module(self) -> "L.LightningModule": ...

    def datamodule_inputs(self) -> dict:
        """Arguments the DataModule needs from the model beyond `data` (e.g. a generator's prompt encoder)."""
        return {}

    @abstractmethod
    def save(self, run_dir: Path) -> None:
        """Write what `build_for(..., run_dir=...)` reads back (weights and the settings ranking depends on)."""


class PartFitter(Protocol):
    def fit_part(self, part: Recommender, data: GlossData, name: str) -> None:
        """Fit `part` on `data` as a run fits a model of its kind, in the folder <run>/parts/<name>."""


class CompositeRecommender(Recommender):
    """A recommender built from other recommenders (GLoSS+), its `parts`: config nodes that build_model turns into
    factories of new, unfit parts. The run fits it through `fit_parts`, which fits each part as a run would (each with
    its own recipe, in its own folder)."""

    def fit(self, data: GlossData) -> None:
        raise TypeError(f"{type(self).__name__} is fit by the run (fit_parts), not fit()")

    def fit_by(self, fitter: "Fitter", data: GlossData) -> None:
        self.fit_parts(data, fitter)
        return None

    @abstractmethod
    def fit_parts(self, data: GlossData, fitter: PartFitter) -> None: ...


def build_model(node: DictConfig | dict) -> Recommender:
    """A model from its config node (conf/model/<name>.yaml as composed). Two keys are not constructor arguments: the
    `recipe` (how it trains) is kept on the model for gloss.training, and a composite's `parts` (model nodes) are
    passed as factories, each call a new unfit part. Interpolations are resolved against the node's root config."""
    from hydra.utils import instantiate

    settings: dict[str, Any] = (OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig)
                                else dict(node))
    recipe = settings.pop("recipe", None)
    extra = {}
    if "parts" in settings:
        extra["parts"] = {name: functools.partial(build_model, part) for name, part in settings.pop("parts").items()}
    model = instantiate(OmegaConf.create(settings), _partial_=True)(**extra)  # objects as they are, not merged into config
    if not isinstance(model, Recommender):
        raise GlossError(f"model._target_={settings.get('_target_')}: not a gloss Recommender")
    model.recipe = recipe
    return model


def histories_digest(histories: Sequence[np.ndarray]) -> str:
    """A key of a set of histories (items and lengths): memos of models whose variants rank the same users."""
    return hashlib.sha256(np.concatenate([np.asarray(h, dtype=np.int64) for h in histories] + [
        np.array([len(h) for h in histories], dtype=np.int64)]).tobytes()).hexdigest()


RANK_BITS = 31  # an item's tie rank takes the low 31 bits of a ranking key (catalogs up to 2^31 items)
RANK_MASK = 2**RANK_BITS - 1
TIE_MULTIPLIERS = (0x2545F491, 0x4F6CDD1D)  # the permutation's seed: fixed forever, the tie order is part of a metric
PAD_KEY = np.iinfo(np.int64).max  # an empty slot, after every real key
RANK_MEMORY_MB: float | None = None  # eval.rank_memory_mb, set by configure_ranking; None: batches of batch_size
BYTES_PER_ENTRY = 12  # a dense ranking block holds float32 scores and their int64 ranking keys
TIE_SLACK = 8  # top_k_scores' short list: k + this many items per row
SPARSE_GROUP_ROWS = 32  # sparse ranking takes each row's top k in groups of rows this large, by candidate count


def configure_ranking(memory_mb: float | None) -> None:
    """Bound every dense [users x items] ranking block by `memory_mb` (eval.rank_memory_mb; run.py and eval.py set it)."""
    global RANK_MEMORY_MB
    RANK_MEMORY_MB = memory_mb


def rows_within_budget(n_items: int, fallback: int) -> int:
    """Users per scoring batch: as many as fit the configured budget at BYTES_PER_ENTRY per (user, item), at least 1;
    `fallback` when no budget is configured (a model used outside run.py / eval.py)."""
    if RANK_MEMORY_MB is None:
        return fallback
    return max(1, int(RANK_MEMORY_MB * 2**20) // (BYTES_PER_ENTRY * max(n_items, 1)))


def tie_rank(items: np.ndarray) -> np.ndarray:
    """Each item index's position in the fixed seeded permutation of [0, 2^31) that orders tied items: two rounds of
    multiply (an odd constant, a bijection mod 2^31) and xor-shift (x ^ x >> 16, its own inverse on 31 bits). It
    depends on nothing but the index: not on the catalog, list depth, target, batch or run seed."""
    x = np.asarray(items, dtype=np.int64)
    if x.size and (x.min() < 0 or x.max() > RANK_MASK):
        raise GlossError(f"item index {x.min() if x.min() < 0 else x.max()}: ranking supports 0 .. {RANK_MASK}")
    for multiplier in TIE_MULTIPLIERS:
        x = (x * multiplier) & RANK_MASK
        x ^= x >> 16
    return x


def item_of_rank(ranks: np.ndarray) -> np.ndarray:
    """The inverse of tie_rank."""
    x = np.asarray(ranks, dtype=np.int64)
    for multiplier in reversed(TIE_MULTIPLIERS):
        x = x ^ (x >> 16)
        x = (x * pow(multiplier, -1, 2**RANK_BITS)) & RANK_MASK
    return x


def tie_sorted(items: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The order (indices into the last axis) of `items` by the rule, in the scores' own precision: higher score
    first, ties by tie_rank."""
    return np.lexsort((tie_rank(items), -np.asarray(scores)), axis=-1)


def ranking_keys(scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """int64 keys whose ascending order is the ranking rule: higher float32 score first, ties by tie_rank (the
    score's order-preserving bits, inverted, above; the item's tie rank in the low RANK_BITS). NaN ranks as -inf,
    -0.0 as 0.0."""
    s = np.ascontiguousarray(scores, dtype=np.float32)
    if np.isnan(s).any():
        s = np.where(np.isnan(s), np.float32(-np.inf), s)
    bits = s.view(np.int32)
    ordered = bits >> 31
    ordered &= 0x7FFFFFFF
    ordered ^= bits  # a negative float's magnitude bits flipped: ascending with the score
    ordered += ordered == -1  # -0.0 (-1 now) is 0.0
    np.subtract(np.int32(2**31 - 1), ordered, out=ordered)  # descending: 2^31 - 1 - x wraps to [0, 2^32) as uint32
    keys = ordered.view(np.uint32).astype(np.int64)
    del ordered
    keys <<= RANK_BITS
    keys |= tie_rank(items)
    return keys


def decode_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(items, float32 scores) of ranking keys; PAD_KEY and -inf become item -1 with score 0."""
    items = item_of_rank(keys & RANK_MASK)
    bits = (2**31 - 1 - (keys >> RANK_BITS)).astype(np.int32)
    bits ^= (bits >> 31) & 0x7FFFFFFF
    scores = bits.view(np.float32)
    empty = (keys == PAD_KEY) | ~np.isfinite(scores)
    items[empty] = -1
    return items, np.where(empty, np.float32(0), scores).astype(np.float32)


def smallest_keys(keys: np.ndarray, k: int) -> np.ndarray:
    """Each row's k smallest keys, ascending (partitions `keys` in place)."""
    k = min(k, keys.shape[1])
    if 0 < k < keys.shape[1]:
        keys.partition(k - 1, axis=1)
    return np.sort(keys[:, :k], axis=1)


def top_k_scores(scores: np.ndarray, k: int, histories: Sequence[np.ndarray] | None = None) -> Ranking:
    """Top-k over full-catalog scores [n, n_items] ranked in float32 by the tie rule; with `histories`, seen items are
    excluded (slots beyond the unseen items are -1).

    Ranking keys are built for a short list per row, not the whole block: torch.topk's best k + TIE_SLACK holds every
    item the rule can rank in the top k whenever its last score is below the k-th (then no item tied at the k-th is
    left out); a row where it is not gets all its items at or above the k-th score."""
    import torch  # scoring models have it loaded already; heuristic runs that never rank densely skip the import

    s = np.asarray(scores, dtype=np.float32)
    nan = bool(np.isnan(s).any())
    if histories is not None or nan:
        s = s.copy() if np.may_share_memory(s, scores) else s
        s[np.isnan(s)] = -np.inf  # NaN ranks as -inf; a seen item as -inf too (both come out as item -1)
        for row, h in enumerate(histories if histories is not None else ()):
            s[row, np.asarray(h, dtype=np.int64)] = -np.inf
    n, n_items = s.shape
    k = min(k, n_items)
    if k == 0 or n == 0:
        return Ranking(np.zeros((n, k), dtype=np.int64), np.zeros((n, k), dtype=np.float32))
    depth = min(n_items, k + TIE_SLACK)
    values, columns = (t.numpy() for t in torch.topk(torch.from_numpy(s), depth, dim=1, sorted=False))
    keys = ranking_keys(values, columns)
    if depth < n_items:
        kth = -np.partition(-values, k - 1, axis=1)[:, k - 1]
        for row in np.flatnonzero(values.min(axis=1) >= kth):  # the short list may end inside a tie: take the row whole
            candidates = np.flatnonzero(s[row] >= kth[row])
            top = smallest_keys(ranking_keys(s[row, candidates], candidates)[None, :], depth)
            keys[row] = top[0, :depth]
    return Ranking(*decode_keys(smallest_keys(keys, k)))


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """[n, k] column indices of each row's k best scores under the tie rule, in the scores' own precision (float64
    near-ties that float32 would merge stay apart): everything above the k-th best value, then the tied items at
    that value by tie rank."""
    n, n_items = scores.shape
    k = min(k, n_items)
    if k == 0:
        return np.zeros((n, 0), dtype=np.int64)
    scores = np.where(np.isnan(scores), -np.inf, scores)
    kth = np.partition(scores, n_items - k, axis=1)[:, n_items - k : n_items - k + 1]
    rank = tie_rank(np.arange(n_items))
    chosen = np.where(scores > kth, -1, np.where(scores == kth, rank[None, :], PAD_KEY))
    top = np.argpartition(chosen, k - 1, axis=1)[:, :k] if k < n_items else np.tile(np.arange(n_items), (n, 1))
    return np.take_along_axis(top, tie_sorted(top, np.take_along_axis(scores, top, axis=1)), axis=1)


def sparse_top_k(increments: sp.csr_matrix, base: np.ndarray, k: int, seen: Sequence[np.ndarray] | None,
                 fallback_order: np.ndarray) -> Ranking:
    """The Ranking top_k_scores gives for the dense scores `increments.toarray() + base` (float32 of their float64 sum;
    `seen` excluded), built from the stored entries and each row's best items by `base` alone, never the dense block.

    Needs increments >= 0 (then float32 rounding keeps a stored entry's score >= its base): an item that is neither
    stored in its row nor among the first k + len(seen) items of `fallback_order` (every item, by `base` under the tie
    rule) has at least k unseen items ranked above it.
    """
    n, n_items = increments.shape
    increments = increments.tocsr()
    increments.sum_duplicates()
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(increments.indptr))
    cols = increments.indices.astype(np.int64)
    stored = rows * n_items + cols  # ascending (canonical CSR)
    depth = min(n_items, k + (max((len(h) for h in seen), default=0) if seen is not None else 0))
    head = fallback_order[:depth]
    head_keys = np.arange(n, dtype=np.int64)[:, None] * n_items + head[None, :]
    fresh = ~contains(stored, head_keys)  # a stored item is ranked by its stored score
    keep = np.ones(len(stored), dtype=bool)
    if seen is not None:
        banned = np.unique(np.concatenate([u * n_items + np.asarray(h, dtype=np.int64) for u, h in enumerate(seen)]
                                          + [np.zeros(0, dtype=np.int64)]))
        keep = ~contains(banned, stored)
        fresh &= ~contains(banned, head_keys)
    kept = np.cumsum(keep) - 1  # slot of a kept entry in its row: its index among kept entries minus the row's first
    first = np.concatenate([[0], np.cumsum(keep)])[increments.indptr[:-1]]
    per_row = np.bincount(rows[keep], minlength=n)
    slots = per_row[:, None] + np.cumsum(fresh, axis=1) - 1
    counts = per_row + fresh.sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(counts)])  # each row's candidates, stored then fresh, one after another
    flat = np.empty(offsets[-1], dtype=np.int64)
    flat[offsets[rows[keep]] + kept[keep] - first[rows[keep]]] = ranking_keys(
        increments.data[keep] + base[cols[keep]], cols[keep])
    head_rows = np.broadcast_to(np.arange(n)[:, None], fresh.shape)[fresh]
    flat[offsets[head_rows] + slots[fresh]] = ranking_keys(base[head], head)[np.nonzero(fresh)[1]]
    keys = np.full((n, min(k, n_items)), PAD_KEY, dtype=np.int64)
    by_count = np.argsort(counts, kind="stable")
    for group in np.array_split(by_count, max(1, -(-n // SPARSE_GROUP_ROWS))):  # similar lengths: little padding
        width = int(counts[group].max(initial=0))
        if width:
            columns = np.arange(width)
            inside = columns < counts[group][:, None]
            block = np.where(inside, flat[np.where(inside, offsets[group][:, None] + columns, 0)], PAD_KEY)
            top = smallest_keys(block, k)
            keys[group, : top.shape[1]] = top
    return Ranking(*decode_keys(keys))


def contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """queries' membership in an ascending array (a searchsorted: no sort of the queries)."""
    if not len(sorted_keys):
        return np.zeros(queries.shape, dtype=bool)
    pos = np.searchsorted(sorted_keys, queries).clip(max=len(sorted_keys) - 1)
    return sorted_keys[pos] == queries


class ScoringRecommender(Recommender):
    """A model that scores the whole catalog for each history; ranking and seen-filtering are shared. Users are scored
    in batches whose dense block fits eval.rank_memory_mb (rows_within_budget over `n_items` when the model has it,
    else over the first batch's width); a model whose scores are a sparse non-negative part plus one base vector
    (`sparse_scores`) never builds the dense block at all."""

    batch_size: int = 1024  # users per batch when no memory budget is configured

    @abstractmethod
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[len(histories), n_items] scores, higher is better."""

    def sparse_scores(self, histories: Sequence[np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray] | None:
        """(increments [len(histories), n_items] >= 0, base [n_items]) whose sum is `score(histories)`, or None
        (the default) to rank the dense scores."""
        return None

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        parts, start, fallback_order = [], 0, None
        n_items = getattr(self, "n_items", None)
        rows = rows_within_budget(n_items, self.batch_size) if n_items or RANK_MEMORY_MB is None else 1
        with Progress(len(histories), "rank") as progress:
            while start < len(histories):
                batch = histories[start : start + rows]
                seen = batch if self.exclude_seen else None
                sparse = self.sparse_scores(batch)
                if sparse is not None:
                    increments, base = sparse
                    if fallback_order is None:
                        width = len(base)
                        fallback_order = np.argsort(ranking_keys(base, np.arange(width)))
                    parts.append(sparse_top_k(increments, base, k, seen, fallback_order))
                else:
                    scores = self.score(batch)
                    width = scores.shape[1]
                    parts.append(top_k_scores(scores, k, seen))
                    del scores
                start += len(batch)
                progress.update(len(batch))
                rows = rows_within_budget(width, self.batch_size)
        if not parts:
            return Ranking(np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32))
        return Ranking(np.concatenate([p.items for p in parts]), np.concatenate([p.scores for p in parts]))
