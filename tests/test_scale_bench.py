"""benchmarks/scale: the synthetic generator's shape, its dataset config, and the benchmark's log parsing and table."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import polars as pl

from tests.data.test_table import dataset

ROOT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"scale_{name}", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthetic, bench = load("make_synthetic"), load("run")


def test_synthetic_is_shaped_like_beauty_and_reads_through_its_config(tmp_path: Path):
    interactions, items = synthetic.make(0.1, seed=0)
    assert synthetic.n_items_for(1) == 12_101 and synthetic.n_items_for(50) == 209_936
    lengths = interactions.group_by("user").len()["len"].to_numpy()
    assert len(lengths) == 2236 and lengths.min() >= 5 and 7.5 < lengths.mean() < 10.5  # beauty: 8.9
    counts = np.sort(interactions.group_by("item").len()["len"].to_numpy())[::-1]
    assert counts[: len(counts) // 10].sum() > 0.3 * counts.sum()  # a popular head, a long tail
    words = items["title"].str.split(" ").list.len().to_numpy()
    assert words.min() >= 3 and words.max() <= 6
    ordered = interactions.with_row_index("r").sort("user", "r")
    assert (ordered.group_by("user", maintain_order=True).agg(pl.col("timestamp").diff().min())["timestamp"]
            .drop_nulls() > 0).all()  # time increases within each user
    folder = tmp_path / "syn"
    folder.mkdir()
    interactions.write_parquet(folder / "interactions.parquet")
    items.write_parquet(folder / "items.parquet")
    data = dataset(tmp_path, tmp_path / "cache", "dataset=synthetic", f"dataset.folder={folder}")
    assert len(data.split.user_ids) == 2236 and len(data.catalog) == items.height
    assert int(data.split.lengths.sum()) == interactions.height


def test_benchmark_parses_run_log_stages_and_writes_growth_exponents(tmp_path: Path):
    log = tmp_path / "run.log"
    log.write_text(
        "[2026-12-05 07:18:44,441][gloss.data.dataset][INFO] - dataset s: read 198615 interactions, 12095 item texts (0.4s)\n"
        "[2026-12-05 07:18:45,594][gloss.data.dataset][INFO] - dataset s (built): {'users': 22363, 'items': 12095}\n"
        "[2026-12-05 07:19:09,894][gloss][INFO] - fit: 1.0s\n"
        "[2026-12-05 07:19:14,383][gloss][INFO] - test: ranked 22363 users in 4.3s (5189.9 users/s)\n")
    got = bench.parse_log(log)
    assert got == {"interactions": 198615, "users": 22363, "items": 12095, "load_s": 1.6, "fit_s": 1.0,
                   "rank_s": 4.3, "rank_users_per_s": 5189.9}
    base = {"rc": 0, "load_avg_start": 1.0, "load_avg_end": 2.0, "commit": "abc", "when": "now"}
    rows = [{**base, "scale": "1", "model": "cooc", "wall_s": 10.0, "cpu_s": 5.0, "rank_s": 2.0, "peak_rss_gib": 1.0},
            {**base, "scale": "50", "model": "cooc", "wall_s": 500.0, "cpu_s": 250.0, "rank_s": 100.0, "peak_rss_gib": 4.0}]
    rows.append({**base, "scale": "50", "model": "sasrec", "wall_s": 9.0, "overrides": bench.MODELS["sasrec"] + ["x=1"]})
    rows.append({**base, "scale": "1", "model": "sasrec", "wall_s": 1.0, "overrides": bench.MODELS["sasrec"]})
    rows.append({**base, "scale": "1", "model": "cooc", "wall_s": 99.0, "overrides": ["model=cooc", "model.decay=2"]})
    rows.append({**base, "scale": "1", "model": "popularity", "wall_s": 3.0, "threads": 2})
    text = bench.table(rows)
    assert "| 50x | sasrec (with: x=1) |" in text and "| sasrec | 1x" not in text  # no exponent from other settings
    assert "| 1x | cooc | " in text and "99.0" not in text  # a later run with other settings does not hide this one
    assert "| 1x | popularity (with: 2 threads) |" in text
    assert "| 50x | cooc |" in text
    assert f"| cooc | 1x -> 50x | 1.00 | 1.00 | 1.00 | {math.log(4) / math.log(50):.2f} |" in text
