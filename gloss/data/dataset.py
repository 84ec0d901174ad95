"""`load_dataset`: read, preprocess and split one dataset (Amazon 2014 files, or any interactions + item table:
`source=table`, docs/datasets.md); cached by input content + every setting that shapes the result (`strict` included:
a strict run never reuses a lenient parse that skipped lines)."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gloss.cache import cached_pickle, file_digest
from gloss.data.readers import download_official, read_official, read_offline
from gloss.data.split import Catalog, Split, build_sequences, raw_events, split_leave_one_out, split_temporal
from gloss.data.table import Events, read_table_source, table_files
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
    # the input files read and their sha256 ({path relative to paths.data_dir, absolute outside it: hex digest}), the
    # ones the cache key is computed from (known for cached data too); gloss.environment writes them to each run folder
    files: dict[str, str] = field(default_factory=dict)

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
        return GlossData(self.name, self.catalog, self.split.held_out(), self.segment_thresholds, self.skipped,
                         self.files)

    def stats(self) -> dict:
        seg = self.segments()
        return {
            "users": len(self.split.user_ids),
            "items": len(self.catalog),
            "interactions": int(self.split.lengths.sum()),
            "val_users": len(self.split.val_users),
            "train_examples": len(self.split.train_examples),
            "test_examples": len(self.split.test_examples()),
            **{f"segment_{s}": int((seg == s).sum()) for s in SEGMENTS},
        }


SOURCES = ("offline", "official", "table")
SPLITS = ("leave_one_out", "temporal")
UNIT_SECONDS = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "datetime": 1e-6}


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
    min_val_users: int = 0,
    cold_max_length: int = 5,
    power_percentile: float = 90.0,
    power_min_length: int | None = None,
    k_core: int | None = None,
    split: str = "leave_one_out",
    temporal_val_quantile: float = 0.8,
    temporal_test_quantile: float = 0.9,
    folder: str | None = None,
    interactions: Mapping | None = None,
    items: Mapping | None = None,
) -> GlossData:
    """Build (or load from cache) the split of one dataset (every key: docs/datasets.md).

    source=offline reads `<data_dir>/amazon2014/<name>/`; source=official reads
    `<data_dir>/amazon2014_raw/reviews_<category>_5.json.gz` + `meta_<category>.json.gz`; source=table reads the
    `interactions` and `items` tables under `<data_dir>/<folder>` (folder: default `name`; absolute: as is).
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise GlossError(
            f"data directory {root} does not exist; set GLOSS_DATA_DIR (e.g. GLOSS_DATA_DIR=../shared/data) "
            "or paths.data_dir"
        )
    if split not in SPLITS:
        raise GlossError(f"dataset.split={split!r}: must be one of {', '.join(SPLITS)}")
    interactions, items = plain(interactions), plain(items)
    read: Callable[[], Events]
    if source == "offline":
        where = root / "amazon2014" / name
        files = [where / "user_sequence.txt", where / "item_titles.tsv"]
        read = lambda: raw_events(read_offline(where, strict))  # noqa: E731
    elif source == "official":
        if not category:
            raise GlossError(f"dataset {name}: source=official needs dataset.category (e.g. Beauty)")
        where = root / "amazon2014_raw"
        files = [where / f"reviews_{category}_5.json.gz", where / f"meta_{category}.json.gz"]
        read = lambda: raw_events(read_official(where, category, strict))  # noqa: E731
        if download:
            download_official(where, category)
    elif source == "table":
        if interactions is None:
            raise GlossError(f"dataset {name}: source=table needs dataset.interactions (the interactions table)")
        where = root / Path(folder if folder is not None else name).expanduser()
        files = table_files(where, interactions, items)  # a missing file: one line naming it
        read = lambda: read_table_source(where, interactions, items, strict)  # noqa: E731
    else:
        raise GlossError(f"dataset.source must be one of {', '.join(SOURCES)}, got {source!r}")
    if split == "temporal" and (source != "table" or interactions.get("timestamp") is None):
        raise GlossError("dataset.split=temporal needs timestamps: dataset.source=table with a "
                         "dataset.interactions.timestamp column (the Amazon 2014 sources give sequences only)")

    def build() -> GlossData:
        # one line per stage with its time: at 10M interactions each takes seconds, and run.log shows where it is
        start = time.perf_counter()
        events = read()
        log.info("dataset %s: read %d interactions, %d item texts (%.1fs)", name, events.frame.height,
                 events.texts.height, time.perf_counter() - start)
        start = time.perf_counter()
        seqs = build_sequences(events, min_user_interactions, k_core)
        log.info("dataset %s: %d user sequences over %d items (%.1fs)", name, len(seqs.user_ids), len(seqs.catalog),
                 time.perf_counter() - start)
        start = time.perf_counter()
        if not seqs.user_ids:
            raise GlossError(f"dataset {name}: no user has >= {max(min_user_interactions, k_core or 0)} interactions "
                             "with titled items" + (f" after the {k_core}-core filter" if k_core else ""))
        if split == "temporal":
            data_split, cuts = split_temporal(seqs.user_ids, seqs.sequences, seqs.times, temporal_val_quantile,
                                              temporal_test_quantile, all_prefixes)
            log.info("dataset %s: temporal split at T_val=%s, T_test=%s", name,
                     *(as_time(t, events.time_unit) for t in cuts))
        else:
            data_split = split_leave_one_out(seqs.user_ids, seqs.sequences, val_fraction, seed, all_prefixes,
                                             min_val_users)
        log.info("dataset %s: %s split (%.1fs)", name, split, time.perf_counter() - start)
        lengths = data_split.lengths
        power_min = power_min_length if power_min_length is not None else float(np.percentile(lengths, power_percentile))
        return GlossData(name, seqs.catalog, data_split, (cold_max_length, power_min), dict(events.skipped))

    if not all(f.is_file() for f in files):
        return build()  # raises the reader's clear "expected files" message
    # every argument that shapes the result except `download` (fetches the files, which are hashed) and the folders
    # (the files' contents are hashed instead); the version in the key changes whenever the code builds different
    # data from the same inputs
    digests = [file_digest(f) for f in files]  # each file read once: the key and GlossData.files reuse them
    key = digests_key(
        "gloss-data-v4", name, source, category, strict, min_user_interactions, val_fraction, seed, all_prefixes,
        cold_max_length, power_percentile, power_min_length, k_core, split, temporal_val_quantile,
        temporal_test_quantile, interactions if source == "table" else None, items if source == "table" else None,
        min_val_users,
        digests=digests,
    )
    data, was_cached = cached_pickle(Path(cache_dir).expanduser() / "data" / f"{name}-{key}.pkl", build, GlossData)
    # set here, not cached: the same for cached data, also from an entry written before the field existed
    data.files = {data_path(f, root): digest for f, digest in zip(files, digests)}
    skipped = sum(data.skipped.values())
    if skipped:
        log.warning("dataset %s: skipped %d malformed line(s): %s", name, skipped, data.skipped)
    log.info("dataset %s (%s): %s", name, "cached" if was_cached else "built", data.stats())
    return data


def digests_key(*parts: Any, digests: list[str]) -> str:
    """`gloss.cache.content_key(*parts, files=...)` from the files' sha256 hex digests, already computed (the same key:
    checked by tests/data/test_data_files.py)."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for digest in digests:
        h.update(digest.encode())
    return h.hexdigest()[:24]


def data_path(path: Path, root: Path) -> str:
    """A data file's name in GlossData.files: relative to the data directory (the same on every machine), absolute
    when outside it."""
    try:
        return path.relative_to(root).as_posix()  # files are named as `root / ...` (an absolute table folder: not)
    except ValueError:
        return str(path.resolve())


def plain(node: Any) -> Any:
    """A config node as plain dicts and lists (Hydra passes nested nodes as DictConfig)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def as_time(value: float, unit: str | None) -> str:
    """A timestamp for the log: its value and, for a known unit, the UTC date."""
    try:
        when = datetime.fromtimestamp(value * UNIT_SECONDS[unit], tz=timezone.utc)
        return f"{value} ({when:%Y-%m-%d %H:%M:%S} UTC)"
    except (KeyError, OverflowError, OSError, ValueError):
        return str(value)
