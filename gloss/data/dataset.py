"""`load_dataset`: read, preprocess and split one Amazon category; cached by input content + every setting that
shapes the result (`strict` included: a strict run never reuses a lenient parse that skipped lines)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gloss.cache import cached_pickle, content_key
from gloss.data.readers import RawData, download_official, read_official, read_offline
from gloss.data.split import Catalog, Split, preprocess, split_leave_one_out
from gloss.errors import GlossError
from gloss.eval.metrics import SEGMENTS

log = logging.getLogger(__name__)


@dataclass
class GlossData:
    name: str
    catalog: Catalog
    split: Split
    segment_thresholds: tuple[int, float]  # (cold: length <= a, power: length > b)
    skipped: dict[str, int] = field(default_factory=dict)

    def segments(self) -> np.ndarray:
        """Per user: 'cold' / 'regular' / 'power' by full sequence length (GLoSS's user segments)."""
        cold_max, power_min = self.segment_thresholds
        lengths, (cold, regular, power) = self.split.lengths, SEGMENTS
        return np.where(lengths <= cold_max, cold, np.where(lengths > power_min, power, regular))

    def training_counts(self) -> np.ndarray:
        """Training interactions per catalog item (float32): popularity, for the models that use it."""
        seqs = self.split.train_sequences()
        return np.bincount(np.concatenate(seqs), minlength=len(self.catalog)).astype(np.float32)

    def held_out(self) -> "GlossData":
        """This data on each user's training part (`Split.held_out`): what GLoSS+'s candidate models are fit on to
        produce its ranker's training examples."""
        return GlossData(self.name, self.catalog, self.split.held_out(), self.segment_thresholds, self.skipped)

    def stats(self) -> dict:
        seg = self.segments()
        return {
            "users": len(self.split.user_ids),
            "items": len(self.catalog),
            "interactions": int(self.split.lengths.sum()),
            "val_users": len(self.split.val_users),
            "train_examples": len(self.split.train_examples),
            **{f"segment_{s}": int((seg == s).sum()) for s in SEGMENTS},
        }


def load_dataset(
    name: str,
    data_dir: str,
    cache_dir: str,
    source: str = "offline",
    category: str | None = None,
    strict: bool = True,
    download: bool = False,
    min_user_interactions: int = 3,
    val_fraction: float = 0.05,
    seed: int = 42,
    all_prefixes: bool = False,
    cold_max_length: int = 5,
    power_percentile: float = 90.0,
    power_min_length: int | None = None,
) -> GlossData:
    """Build (or load from cache) the GLoSS split of one dataset.

    source=offline reads `<data_dir>/amazon2014/<name>/`; source=official reads
    `<data_dir>/amazon2014_raw/reviews_<category>_5.json.gz` + `meta_<category>.json.gz`.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise GlossError(
            f"data directory {root} does not exist; set GLOSS_DATA_DIR (e.g. GLOSS_DATA_DIR=../shared/data) "
            "or paths.data_dir"
        )
    if source == "offline":
        folder = root / "amazon2014" / name
        files = [folder / "user_sequence.txt", folder / "item_titles.tsv"]
        read = lambda: read_offline(folder, strict)  # noqa: E731
    elif source == "official":
        if not category:
            raise GlossError(f"dataset {name}: source=official needs dataset.category (e.g. Beauty)")
        folder = root / "amazon2014_raw"
        files = [folder / f"reviews_{category}_5.json.gz", folder / f"meta_{category}.json.gz"]
        read = lambda: read_official(folder, category, strict)  # noqa: E731
        if download:
            download_official(folder, category)
    else:
        raise GlossError(f"dataset.source must be 'offline' or 'official', got {source!r}")

    def build() -> GlossData:
        raw: RawData = read()
        catalog, user_ids, seqs = preprocess(raw, min_user_interactions)
        if not user_ids:
            raise GlossError(f"dataset {name}: no user has >= {min_user_interactions} titled interactions")
        split = split_leave_one_out(user_ids, seqs, val_fraction, seed, all_prefixes)
        power_min = power_min_length if power_min_length is not None else float(np.percentile(split.lengths, power_percentile))
        return GlossData(name, catalog, split, (cold_max_length, power_min), dict(raw.skipped))

    if not all(f.is_file() for f in files):
        return build()  # raises the reader's clear "expected files" message
    # every argument that shapes the result except `download` (fetches the files, which are hashed) and the two
    # folders (the files' contents are hashed instead); the version in the key changes whenever the code builds
    # different data from the same inputs
    key = content_key(
        "gloss-data-v3", name, source, category, strict, min_user_interactions, val_fraction, seed, all_prefixes,
        cold_max_length, power_percentile, power_min_length, files=files,
    )
    data, was_cached = cached_pickle(Path(cache_dir).expanduser() / "data" / f"{name}-{key}.pkl", build)
    skipped = sum(data.skipped.values())
    if skipped:
        log.warning("dataset %s: skipped %d malformed line(s): %s", name, skipped, data.skipped)
    log.info("dataset %s (%s): %s", name, "cached" if was_cached else "built", data.stats())
    return data
