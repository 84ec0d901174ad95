"""Small datasets in the layouts `source=table` reads (written to tmp dirs, never downloaded): a CSV table
(conf/dataset/table.yaml), MovieLens 1M (`::`, latin-1) and 20M (CSV), and Amazon Reviews 2023 (JSON lines).

Every writer draws the same kind of data as tests/conftest.py's tiny dataset: users walk a fixed item cycle (item i
-> i+1), so next-item structure is learnable, with increasing timestamps; `events(...)` gives the rows."""
from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

WORDS = ["red", "blue", "green", "black", "white", "pink", "gold", "silver"]
KINDS = ["lamp", "chair", "table", "mug", "shelf"]
N_ITEMS = len(WORDS) * len(KINDS)


def item_title(i: int) -> str:
    return f"{WORDS[i % len(WORDS)]} {KINDS[i // len(WORDS)]} number {i}"


def events(n_users: int = 40, seed: int = 0, min_len: int = 6, max_len: int = 12) -> list[tuple[int, int, int]]:
    """(user, item, timestamp) rows, users interleaved in time; timestamps are seconds from 2020-01-01."""
    rng = random.Random(seed)
    rows = []
    for u in range(n_users):
        start, length, t = rng.randrange(N_ITEMS), rng.randint(min_len, max_len), 1_577_836_800 + rng.randrange(10**6)
        for j in range(length):
            t += rng.randrange(3600, 10 * 86400)
            rows.append((u, (start + j) % N_ITEMS, t))
    rng.shuffle(rows)  # a table need not be grouped by user nor sorted by time
    return rows


def write_table_csv(root: Path, name: str = "shop", n_users: int = 40) -> Path:
    """<root>/<name>/interactions.csv (user,item,timestamp) + items.csv (item,title; one item without a title)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = events(n_users)
    with open(folder / "interactions.csv", "w") as f:
        f.write("user,item,timestamp\n")
        for u, i, t in rows:
            f.write(f"c{u:03d},{i:04d},{t}\n")
        f.write("c000,9999,1577836900\n")  # an item without a title: dropped
    with open(folder / "items.csv", "w") as f:
        f.write("item,title\n")
        for i in range(N_ITEMS):
            f.write(f'{i:04d},"{item_title(i)}, deluxe"\n')
        f.write("9999,\n")
    return root


def write_movielens_1m(root: Path, n_users: int = 40) -> Path:
    """<root>/movielens/ml-1m/ratings.dat (UserID::MovieID::Rating::Timestamp) + movies.dat (latin-1)."""
    folder = root / "movielens" / "ml-1m"
    folder.mkdir(parents=True, exist_ok=True)
    rows = sorted(events(n_users), key=lambda r: (r[0], r[2]))  # ml-1m lists each user's ratings together
    with open(folder / "ratings.dat", "w", encoding="latin-1") as f:
        for u, i, t in rows:
            f.write(f"{u + 1}::{i + 1}::{1 + (u + i) % 5}::{t}\n")
    with open(folder / "movies.dat", "w", encoding="latin-1") as f:
        for i in range(N_ITEMS):
            title = f'Café "{item_title(i)}": the movie ({1990 + i % 10})' if i % 7 == 0 else f"{item_title(i)} (1999)"
            f.write(f"{i + 1}::{title}::Comedy|Drama\n")
    return root


def write_movielens_20m(root: Path, name: str = "ml-20m", n_users: int = 40) -> Path:
    """<root>/movielens/<name>/ratings.csv (userId,movieId,rating,timestamp) + movies.csv (quoted titles)."""
    folder = root / "movielens" / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = sorted(events(n_users), key=lambda r: (r[0], r[2]))
    with open(folder / "ratings.csv", "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for u, i, t in rows:
            f.write(f"{u + 1},{i + 1},{(1 + (u + i) % 10) / 2},{t}\n")
    with open(folder / "movies.csv", "w") as f:
        f.write("movieId,title,genres\n")
        for i in range(N_ITEMS):
            f.write(f'{i + 1},"{item_title(i)}, The (1999)",Comedy|Drama\n')
    return root


def write_amazon2023(root: Path, category: str = "All_Beauty", n_users: int = 40, gz: bool = False) -> Path:
    """<root>/amazon2023/<category>.jsonl (reviews, ms timestamps) + meta_<category>.jsonl; gz=True: .jsonl.gz."""
    folder = root / "amazon2023"
    folder.mkdir(parents=True, exist_ok=True)
    opener = (lambda p: gzip.open(str(p) + ".gz", "wt")) if gz else (lambda p: open(p, "w"))
    with opener(folder / f"{category}.jsonl") as f:
        for u, i, t in events(n_users):
            f.write(json.dumps({"rating": 5.0, "title": "great", "text": "ok", "images": [], "asin": f"V{i:05d}",
                                "parent_asin": f"P{i:05d}", "user_id": f"AUSER{u:03d}", "timestamp": t * 1000,
                                "helpful_vote": 0, "verified_purchase": True}) + "\n")
    with opener(folder / f"meta_{category}.jsonl") as f:
        for i in range(N_ITEMS):
            f.write(json.dumps({"main_category": "Beauty", "title": item_title(i), "average_rating": 4.5,
                                "features": [f"feature {i}", ""], "description": [], "price": None if i % 2 else 9.99,
                                "images": [], "details": {"Brand": "x"} if i % 3 else {}, "parent_asin": f"P{i:05d}",
                                "store": "Shop"}) + "\n")
    return root
