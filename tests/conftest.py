"""Shared fixtures: a tiny synthetic dataset in the offline format, and the real data when present."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

COLORS = ["red", "blue", "green", "black", "white", "pink", "gold", "silver"]
KINDS = ["lipstick", "shampoo", "mascara", "serum", "lotion"]


def write_tiny_dataset(root: Path, name: str = "tiny", n_users: int = 60, seed: int = 0) -> Path:
    """Users walk a fixed item cycle (item i -> i+1), so next-item structure is learnable and checkable."""
    rng = random.Random(seed)
    items = [f"B{i:05d}" for i in range(len(COLORS) * len(KINDS))]
    folder = root / "amazon2014" / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "item_titles.tsv", "w") as f:
        f.write("asin\ttitle\n")
        for i, asin in enumerate(items):
            f.write(f"{asin}\t{COLORS[i % len(COLORS)]} {KINDS[i // len(COLORS)]} number {i}\n")
        f.write("B99999\t\n")  # untitled item: must be dropped
    with open(folder / "user_sequence.txt", "w") as f:
        for u in range(n_users):
            start, length = rng.randrange(len(items)), rng.randint(3, 12)
            seq = [items[(start + j) % len(items)] for j in range(length)]
            if u % 10 == 0:
                seq.insert(1, "B99999")
            f.write(f"U{u:04d} " + " ".join(seq) + "\n")
    return root


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    env = os.environ.get("GLOSS_DATA_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not (path / "amazon2014" / "beauty" / "user_sequence.txt").is_file():
        pytest.skip(f"Amazon 2014 offline data not found under {path} (set GLOSS_DATA_DIR)")
    return path
