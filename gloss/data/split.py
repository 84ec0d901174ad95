"""GLoSS preprocessing and the leave-one-out split.

Protocol (GLoSS `make_hfdataset.py`): items without a title are dropped, then users with fewer than 3
interactions. Test = last item with every earlier item as history (all users). A random 5 % of users
(`random.seed(42)`, `random.sample` over users in file order) are validation users: validation target =
second-to-last item, training target = item n-3. Every other user trains on item n-2.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from gloss.data.readers import RawData


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

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences])

    def test_examples(self) -> np.ndarray:
        return np.stack([np.arange(len(self.sequences)), self.lengths - 1], axis=1)

    def val_examples(self) -> np.ndarray:
        return np.stack([self.val_users, self.lengths[self.val_users] - 2], axis=1)

    def examples(self, stage: str) -> np.ndarray:
        return {"train": lambda: self.train_examples, "val": self.val_examples, "test": self.test_examples}[stage]()

    def histories(self, examples: np.ndarray) -> list[np.ndarray]:
        return [self.sequences[u][:c] for u, c in examples]

    def targets(self, examples: np.ndarray) -> np.ndarray:
        return np.array([self.sequences[u][c] for u, c in examples], dtype=np.int64)

    def train_sequences(self) -> list[np.ndarray]:
        """Each user's sequence up to and including its last training target (no val/test target leaks)."""
        last = self.lengths - 1  # index of the first item not used for training: test target
        last[self.val_users] -= 1  # validation users also hold out the val target
        return [s[:c] for s, c in zip(self.sequences, last)]

    def held_out(self) -> "Split":
        """The same users, validation users and example rules on each user's training part (`train_sequences()`).

        Its test targets are every user's last training target, its validation targets the validation users' item
        before that: a model fit on this split has never seen them (GLoSS+ trains its ranker on them), and no
        validation or test target of this split is inside it. Validation users whose part is shorter than 3 items
        (no history before a validation target) validate nothing here and count as ordinary users.
        """
        sequences = self.train_sequences()
        val_users = np.array([u for u in self.val_users if len(sequences[u]) >= 3], dtype=np.int64)
        cuts = training_cuts(sequences, set(val_users.tolist()), self.all_prefixes)
        return Split(self.user_ids, sequences, val_users, cuts, self.all_prefixes)


def preprocess(raw: RawData, min_user_interactions: int = 3) -> tuple[Catalog, list[str], list[np.ndarray]]:
    """Drop untitled items, then users below `min_user_interactions`; map items to catalog indices."""
    titled = {i for i, t in raw.titles.items() if t}
    user_ids, seqs = [], []
    for user, items in raw.sequences.items():
        kept = [i for i in items if i in titled]
        if len(kept) >= min_user_interactions:
            user_ids.append(user)
            seqs.append(kept)
    # catalog order: first appearance in the kept sequences (deterministic for a given input)
    index: dict[str, int] = {}
    for s in seqs:
        for i in s:
            index.setdefault(i, len(index))
    catalog = Catalog(list(index), [raw.titles[i] for i in index])
    return catalog, user_ids, [np.array([index[i] for i in s], dtype=np.int64) for s in seqs]


def split_leave_one_out(
    user_ids: list[str],
    sequences: list[np.ndarray],
    val_fraction: float = 0.05,
    seed: int = 42,
    all_prefixes: bool = False,
) -> Split:
    """The GLoSS split; `all_prefixes=True` adds every earlier (history, next item) pair as a training example."""
    rng = random.Random(seed)
    n_val = int(val_fraction * len(user_ids))
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
