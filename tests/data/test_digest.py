"""The Amazon 2014 beauty data, as `load_dataset` builds it, pinned by one digest: catalog ids and titles, every user's
id and sequence, the train / validation / test examples and the validation users. Pinned on the code before generic
sources existed (issue 25): a change to readers, preprocessing, split or config composition that alters any of it
fails here."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from gloss.data import GlossData, load_dataset
from tests.conftest import composed

DIGESTS = {  # measured on commit 4422c22, before generic sources
    "beauty": "1a4b8a0776b040cea6c1235d952b031677b7bbf52909a71c092e39344dbd25a2",
    "toys": "a449280c5affb87ff687a28f57225e401fcac85da7173d51e5d5ad46713c609b",
    "sports": "92857e0cd7e3e66f1c981cf29771a4f7ba7f6d32dd1accf7744a7b697fa56576",
}


def data_digest(data: GlossData) -> str:
    h = hashlib.sha256()

    def add(*parts) -> None:
        for p in parts:
            h.update(np.ascontiguousarray(p, dtype=np.int64).tobytes() if isinstance(p, np.ndarray) else str(p).encode())
            h.update(b"\0")

    add(len(data.catalog), *data.catalog.item_ids, *data.catalog.titles)
    split = data.split
    add(len(split.user_ids), *split.user_ids)
    for seq in split.sequences:
        add(seq)
    add(split.val_users, split.train_examples, split.val_examples(), split.test_examples(), data.segment_thresholds)
    return h.hexdigest()


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_amazon2014_configs_build_the_same_data_as_before_generic_sources(name, shared_data_dir: Path, tmp_path: Path):
    from hydra.utils import instantiate

    cfg = composed(f"dataset={name}", f"paths.data_dir={shared_data_dir}", f"paths.cache_dir={tmp_path}")
    assert data_digest(instantiate(cfg.dataset)) == DIGESTS[name]
    assert data_digest(instantiate(cfg.dataset)) == DIGESTS[name]  # from the cache


@pytest.mark.data
def test_beauty_from_load_dataset_arguments(shared_data_dir: Path, tmp_path: Path):
    data = load_dataset("beauty", str(shared_data_dir), str(tmp_path), power_min_length=14)
    assert data_digest(data) == DIGESTS["beauty"]
