"""Preprocessing (items without text dropped, k-core / minimum length, each user's order) and the two splits.

Preprocessing (`build_sequences`, every source): items without a title/text are dropped with their interactions;
then users with fewer than max(k_core, min_user_interactions) interactions and (k_core) items with fewer than k_core
are dropped, again and again until nothing changes. A user's items are ordered by timestamp, ties (and sources
without timestamps) by the row order of the input file; users come in the order of their first kept row, catalog
items in the order of their first appearance in those sequences.

Leave-one-out (the GLoSS protocol, `make_hfdataset.py`): test = last item with every earlier item as history (all
users). A random 5 % of users (`random.seed(42)`, `random.sample` over users in order) are validation users:
validation target = second-to-last item, training target = item n-3. Every other user trains on item n-2.

Temporal (`split_temporal`): two global cut times from all interactions' timestamps; see its docstring and
docs/datasets.md.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import numpy as np
import polars as pl

from gloss.data.readers import RawData
from gloss.data.table import Events
from gloss.errors import GlossError

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    """Item ids and titles; item index i in every model and metric means `item_ids[i]`."""

    item_ids: list[str]
    titles: list[str]

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def texts(self) -> list[str]:
        """The GLoSS serialization of each item, as indexed by retrievers and written by generators."""
        return [serialize_title(t) for t in self.titles]


TITLE_FORMAT = "Title: {title}"  # GLoSS's text of an item: catalog texts, the paper's prompt items, retrieval queries


def serialize_title(title: str) -> str:
    return TITLE_FORMAT.format(title=title)


@dataclass
class Split:
    """Full chronological sequences plus which cut points are train / validation / test examples.

    An example (u, c) means history = sequences[u][:c], target = sequences[u][c].
    """

    user_ids: list[str]
    sequences: list[np.ndarray]  # item indices into the Catalog, oldest first
    val_users: np.ndarray  # user indices of validation users (sorted)
    train_examples: np.ndarray  # [m, 2] (user, cut)
    all_prefixes: bool = False  # train_examples hold every prefix, not only each user's last training target
    # leave-one-out leaves these None; the temporal split sets them
    test_cuts: np.ndarray | None = None  # per user: the cut of its test target, -1 = none; None: every user's last item
    val_cuts: np.ndarray | None = None  # per validation user (as val_users): its cut; None: its second-to-last item
    train_ends: np.ndarray | None = None  # per user: length of its training part; None: up to its last training target

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences])

    def test_examples(self) -> np.ndarray:
        if self.test_cuts is None:
            return np.stack([np.arange(len(self.sequences)), self.lengths - 1], axis=1)
        users = np.flatnonzero(self.test_cuts >= 0)
        return np.stack([users, self.test_cuts[users]], axis=1).astype(np.int64)

    def val_examples(self) -> np.ndarray:
        cuts = self.lengths[self.val_users] - 2 if self.val_cuts is None else self.val_cuts
        return np.stack([self.val_users, cuts], axis=1).astype(np.int64)

    def examples(self, stage: str) -> np.ndarray:
        return {"train": lambda: self.train_examples, "val": self.val_examples, "test": self.test_examples}[stage]()

    def histories(self, examples: np.ndarray) -> list[np.ndarray]:
        return [self.sequences[u][:c] for u, c in examples]

    def targets(self, examples: np.ndarray) -> np.ndarray:
        return np.array([self.sequences[u][c] for u, c in examples], dtype=np.int64)

    def train_sequences(self) -> list[np.ndarray]:
        """Each user's sequence up to and including its last training target (no val/test target leaks)."""
        if self.train_ends is not None:
            return [s[:c] for s, c in zip(self.sequences, self.train_ends)]
        last = self.lengths - 1  # index of the first item not used for training: test target
        last[self.val_users] -= 1  # validation users also hold out the val target
        return [s[:c] for s, c in zip(self.sequences, last)]

    def held_out(self) -> "Split":
        """The same users, validation users and example rules on each user's training part (`train_sequences()`).

        Its test targets are every user's last training target, its validation targets the validation users' item
        before that: a model fit on this split has never seen them (GLoSS+ trains its ranker on them), and no
        validation or test target of this split is inside it. Validation users whose part is shorter than 3 items
        (no history before a validation target) validate nothing here and count as ordinary users; a user whose part
        is empty (temporal split) has no test example here.
        """
        sequences = self.train_sequences()
        val_users = np.array([u for u in self.val_users if len(sequences[u]) >= 3], dtype=np.int64)
        cuts = training_cuts(sequences, set(val_users.tolist()), self.all_prefixes)
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        test_cuts = None if (lengths >= 1).all() else np.where(lengths >= 1, lengths - 1, -1)
        return Split(self.user_ids, sequences, val_users, cuts, self.all_prefixes, test_cuts=test_cuts)


@dataclass
class Sequences:
    """The preprocessed data before a split."""

    catalog: Catalog
    user_ids: list[str]
    sequences: list[np.ndarray]  # item indices, oldest first
    times: list[np.ndarray] | None  # the timestamps of `sequences` (None: the source has none)


def raw_events(raw: RawData) -> Events:
    """The Amazon 2014 readers' output as rows: a row per item of each sequence, in sequence order (no timestamps)."""
    users = [u for u, seq in raw.sequences.items() for _ in seq]
    items = [i for seq in raw.sequences.values() for i in seq]
    frame = pl.DataFrame({"user": users, "item": items}, schema={"user": pl.String, "item": pl.String})
    frame = frame.with_row_index("row").with_columns(ts=pl.lit(None, dtype=pl.Int64))
    texts = pl.DataFrame({"item": list(raw.titles), "text": list(raw.titles.values())},
                         schema={"item": pl.String, "text": pl.String})
    return Events(frame.select("user", "item", "ts", "row"), texts, raw.files, dict(raw.skipped))


def build_sequences(events: Events, min_user_interactions: int = 3, k_core: int | None = None) -> Sequences:
    """Drop items without text, then filter users (>= max(k_core, min_user_interactions) interactions) and items
    (>= k_core) to a fixed point; order each user's items by (timestamp, file row)."""
    texts = events.texts.filter(pl.col("text").is_not_null() & (pl.col("text") != ""))
    frame = events.frame.join(texts.select("item"), on="item", how="semi")  # order: restored by the sort below
    user_min, item_min = max(min_user_interactions, k_core or 0), k_core or 0
    while True:
        before = frame.height
        frame = frame.filter(pl.len().over("user") >= user_min)
        if item_min > 1:
            frame = frame.filter(pl.len().over("item") >= item_min)
        if frame.height == before:
            break
    if frame.height == 0:
        return Sequences(Catalog([], []), [], [], None)
    frame = frame.with_columns(first=pl.col("row").min().over("user")).sort(["first", "ts", "row"])
    item_ids = frame["item"].unique(maintain_order=True)
    index = frame["item"].replace_strict(item_ids, np.arange(len(item_ids)), return_dtype=pl.Int64).to_numpy()
    bounds = np.cumsum(frame["user"].unique_counts().to_numpy())[:-1]
    title = dict(zip(texts["item"].to_list(), texts["text"].to_list()))
    catalog = Catalog(item_ids.to_list(), [title[i] for i in item_ids.to_list()])
    times = None
    if events.time_unit is not None:
        times = np.split(frame["ts"].to_numpy(), bounds)
    return Sequences(catalog, frame["user"].unique(maintain_order=True).to_list(), np.split(index, bounds), times)


def preprocess(raw: RawData, min_user_interactions: int = 3, k_core: int | None = None
               ) -> tuple[Catalog, list[str], list[np.ndarray]]:
    """`build_sequences` of an Amazon 2014 reader's output: (catalog, user ids, sequences of catalog indices)."""
    seqs = build_sequences(raw_events(raw), min_user_interactions, k_core)
    return seqs.catalog, seqs.user_ids, seqs.sequences


def split_leave_one_out(
    user_ids: list[str],
    sequences: list[np.ndarray],
    val_fraction: float = 0.05,
    seed: int = 42,
    all_prefixes: bool = False,
    min_val_users: int = 0,
) -> Split:
    """The GLoSS split; `all_prefixes=True` adds every earlier (history, next item) pair as a training example.

    `min_val_users` is a floor on the validation users (at most half the users; only with val_fraction > 0): on small
    data 5 % is too few users to choose anything on (47 users of 940). Where it applies it is logged."""
    if not isinstance(min_val_users, int) or isinstance(min_val_users, bool) or min_val_users < 0:
        raise GlossError(f"dataset.min_val_users={min_val_users!r}: must be an integer >= 0")
    rng = random.Random(seed)
    n_val = int(val_fraction * len(user_ids))
    floor = min(min_val_users, len(user_ids) // 2) if val_fraction > 0 else 0
    if n_val < floor:
        log.info("validation users: %d (the floor dataset.min_val_users=%d, at most half of the %d users) instead of "
                 "%d (dataset.val_fraction=%s)", floor, min_val_users, len(user_ids), n_val, val_fraction)
        n_val = floor
    val = set(rng.sample(range(len(user_ids)), n_val))
    return Split(
        user_ids=user_ids,
        sequences=sequences,
        val_users=np.array(sorted(val), dtype=np.int64),
        train_examples=training_cuts(sequences, val, all_prefixes),
        all_prefixes=all_prefixes,
    )


def training_cuts(sequences: list[np.ndarray], val_users: set[int], all_prefixes: bool) -> np.ndarray:
    """[m, 2] (user, cut) training examples: target n-3 for validation users, n-2 for the others (and with
    `all_prefixes` every earlier cut from 1)."""
    train = []
    for u, s in enumerate(sequences):
        last_cut = len(s) - 3 if u in val_users else len(s) - 2
        first_cut = 1 if all_prefixes else last_cut
        train.extend((u, c) for c in range(max(first_cut, 0), last_cut + 1))
    return np.array(train, dtype=np.int64).reshape(-1, 2)


def temporal_cuts(times: list[np.ndarray], val_quantile: float, test_quantile: float) -> tuple[float, float]:
    """(T_val, T_test): numpy.quantile(every interaction's timestamp, q, method="higher") for each quantile."""
    every = np.concatenate(times)
    return (np.quantile(every, val_quantile, method="higher").item(),
            np.quantile(every, test_quantile, method="higher").item())


def split_temporal(
    user_ids: list[str],
    sequences: list[np.ndarray],
    times: list[np.ndarray],
    val_quantile: float = 0.8,
    test_quantile: float = 0.9,
    all_prefixes: bool = False,
) -> tuple[Split, tuple[float, float]]:
    """A global temporal split at T_val <= T_test (`temporal_cuts`): training period t < T_val, validation period
    T_val <= t < T_test, test period t >= T_test.

    Per user (items ordered by time, ties by file row): the test target is the first item in the test period, with
    every earlier item as history (training and validation periods); later items are dropped (the user's sequence
    ends at its test target). The validation target is the first item in the validation period, with every earlier
    item as history; every user who has one is a validation user (`val_fraction` is not used). Training uses the
    training period only: one example per user, its last item before T_val (`all_prefixes`: every cut from 1). A
    target needs at least one item before it; a user left with no example is dropped. Returns the split and the
    two cut times.
    """
    t_val, t_test = temporal_cuts(times, val_quantile, test_quantile)
    keep, seqs, test, val_users, val, ends = [], [], [], [], [], []
    for u, (s, t) in enumerate(zip(sequences, times)):
        before_val, before_test = int(np.searchsorted(t, t_val, "left")), int(np.searchsorted(t, t_test, "left"))
        has_test = 1 <= before_test < len(s)
        has_val = 1 <= before_val < before_test
        if not (has_test or has_val or before_val >= 2):
            continue
        if has_val:
            val_users.append(len(keep))
            val.append(before_val)
        keep.append(u)
        seqs.append(s[: before_test + 1])
        test.append(before_test if has_test else -1)
        ends.append(before_val)
    ends_array = np.array(ends, dtype=np.int64)
    train = []
    for u, end in enumerate(ends):
        first = 1 if all_prefixes else end - 1
        train.extend((u, c) for c in range(max(first, 1), end))
    split = Split(
        user_ids=[user_ids[u] for u in keep],
        sequences=seqs,
        val_users=np.array(val_users, dtype=np.int64),
        train_examples=np.array(train, dtype=np.int64).reshape(-1, 2),
        all_prefixes=all_prefixes,
        test_cuts=np.array(test, dtype=np.int64),
        val_cuts=np.array(val, dtype=np.int64),
        train_ends=ends_array,
    )
    if not (split.test_cuts >= 0).any():
        raise GlossError(f"split=temporal: no user has an item at or after T_test={t_test} with one before it "
                         "(lower dataset.temporal_test_quantile)")
    return split, (t_val, t_test)
