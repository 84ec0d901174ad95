"""Synthetic dataset shaped like Amazon 2014 Beauty, at `--scale` times its size (issue 25, scale benchmark).

Beauty at 1x: 22,363 users, 12,101 items, ~198k interactions (mean length 8.9, every user >= 5). The generator keeps
what the models feed on, so that no model is measured on noise:
- power-law item popularity (Zipf exponent 0.6, shuffled over items), the long tail of real catalogs;
- items in clusters (~25 items each) whose short titles (3-6 words) share the cluster's topic words, so
  title similarity (lis) carries signal;
- each user's sequence walks clusters: the next item stays in the current cluster with probability 0.7, else the walk
  jumps to a cluster drawn by cluster popularity, so co-occurrence (cooc) and sequence models carry signal;
- sequence lengths 5 + a rounded log-normal (heavy tail, capped at 200), timestamps increasing per user.
The catalog grows slower than the users, as in the issue's measurements (1x 12,101, 10x 42,022, 50x 209,936 items).
Writes <out>/interactions.parquet (user,item,timestamp in seconds) and <out>/items.parquet (item,title), read by
conf/dataset/synthetic.yaml. Vectorised numpy: 50x (1.1M users, ~9.9M interactions) in well under 2 minutes.

    python benchmarks/scale/make_synthetic.py --scale 50 --out /tmp/scale/x50
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import polars as pl

BEAUTY_USERS = 22_363
ITEMS = {1: 12_101, 10: 42_022, 50: 209_936}  # other scales: interpolated in log-log
CLUSTER_SIZE = 25
STAY = 0.7  # probability that the next item is from the current cluster
ZIPF = 0.6  # popularity exponent: the top item has ~1 % of the interactions, a long tail has few
LENGTH_MU, LENGTH_SIGMA, MIN_LENGTH, MAX_LENGTH = 0.88, 1.1, 5, 200  # mean length ~8.9, as beauty

SYLLABLES = ["ka", "lo", "mi", "ra", "ve", "su", "to", "ne", "pa", "ri", "zo", "la", "be", "do", "fi", "gu", "ha", "jo",
             "ku", "ma", "no", "pe", "sa", "ti", "vo", "wi", "ye", "xu", "qi", "ce"]
NOUNS = ["cream", "serum", "lotion", "shampoo", "mascara", "lipstick", "cleanser", "mask", "oil", "gel", "polish",
         "brush", "toner", "balm", "spray", "powder", "soap", "scrub", "foundation", "conditioner"]


def n_items_for(scale: float) -> int:
    points = np.log(np.array(sorted(ITEMS), dtype=float))
    return int(round(np.exp(np.interp(np.log(scale), points, np.log([ITEMS[s] for s in sorted(ITEMS)]),
                                      left=None, right=None))))


def words(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` distinct made-up words of 2-4 syllables (30^4 possible: enough for any scale here)."""
    syl = rng.integers(0, len(SYLLABLES), size=(3 * n, 4))
    length = rng.integers(2, 5, size=3 * n)
    codes = np.where(np.arange(4)[None, :] < length[:, None], syl + 1, 0) @ (31 ** np.arange(4))  # one code per word
    _, first = np.unique(codes, return_index=True)
    keep = np.sort(first)[:n]
    if len(keep) < n:
        raise ValueError(f"could not make {n} distinct words")
    table = np.array([""] + SYLLABLES)
    return np.char.add(np.char.add(table[(syl[keep, 0] + 1)], table[(syl[keep, 1] + 1)]),
                       np.char.add(table[np.where(length[keep] > 2, syl[keep, 2] + 1, 0)],
                                   table[np.where(length[keep] > 3, syl[keep, 3] + 1, 0)]))


def make(scale: float, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    n_users, n_items = int(round(BEAUTY_USERS * scale)), n_items_for(scale)
    n_clusters = max(1, n_items // CLUSTER_SIZE)

    # items: a cluster each, a Zipf weight each; titles = brand + 1-3 of the cluster's topic words + a noun
    cluster = rng.integers(0, n_clusters, size=n_items)
    weight = rng.permutation(np.arange(1, n_items + 1)) ** -ZIPF
    vocab = words(rng, 4 * n_clusters + 200)
    topics = rng.choice(len(vocab) - 200, size=(n_clusters, 4), replace=False if len(vocab) - 200 >= 4 else True)
    brands, nouns = vocab[-200:], np.array(NOUNS)
    n_topic = rng.integers(1, 4, size=n_items)  # 3-5 words with brand and noun, 6 with the size suffix below
    picks = topics[cluster][np.arange(n_items)[:, None], rng.permuted(np.tile(np.arange(4), (n_items, 1)), axis=1)]
    brand = brands[rng.integers(0, len(brands), size=n_items)]
    noun = nouns[(cluster * 7 + rng.integers(0, 2, size=n_items)) % len(nouns)]
    size = np.where(rng.random(n_items) < 0.3, np.char.add(rng.integers(1, 17, n_items).astype(str), "oz"), "")
    parts = pl.DataFrame({"brand": brand, **{f"w{j}": np.where(n_topic > j, vocab[picks[:, j]], "") for j in range(3)},
                          "noun": noun, "size": size})
    item_ids = np.char.add("I", np.arange(n_items).astype(str))
    items = parts.select(item=pl.Series(item_ids), title=pl.concat_str(pl.all(), separator=" ")
                         .str.replace_all(r"\s+", " ").str.strip_chars())

    # sequences: lengths, then a cluster walk, then an item per step drawn by popularity within its cluster
    lengths = np.minimum(MIN_LENGTH + np.floor(rng.lognormal(LENGTH_MU, LENGTH_SIGMA, size=n_users)).astype(np.int64),
                         MAX_LENGTH)
    total = int(lengths.sum())
    starts = np.zeros(n_users, dtype=np.int64)
    starts[1:] = np.cumsum(lengths)[:-1]
    user = np.repeat(np.arange(n_users), lengths)
    order = np.argsort(cluster, kind="stable")  # items grouped by cluster
    cum = np.cumsum(weight[order])
    bounds = np.searchsorted(cluster[order], np.arange(n_clusters + 1))  # cluster c: order[bounds[c]:bounds[c+1]]
    lo = np.concatenate([[0.0], cum])[bounds[:-1]]
    hi = np.concatenate([[0.0], cum])[bounds[1:]]
    cluster_weight = hi - lo
    jump = rng.random(total) >= STAY
    jump[starts] = True
    walk = rng.choice(n_clusters, size=int(jump.sum()), p=cluster_weight / cluster_weight.sum())
    step_cluster = walk[np.cumsum(jump) - 1]
    x = lo[step_cluster] + rng.random(total) * (hi[step_cluster] - lo[step_cluster])
    item = order[np.minimum(np.searchsorted(cum, x, side="right"), n_items - 1)]

    # timestamps: each user starts somewhere in 2010-2014 and acts every few days
    t0 = rng.integers(1_262_304_000, 1_388_534_400, size=n_users)
    gaps = rng.exponential(5 * 86_400, size=total).astype(np.int64) + 1
    gaps[starts] = 0
    csum = np.cumsum(gaps)
    ts = t0[user] + csum - csum[starts][user]
    interactions = pl.DataFrame({"user": np.char.add("U", user.astype(str)), "item": item_ids[item], "timestamp": ts})
    used = np.zeros(n_items, dtype=bool)
    used[item] = True
    return interactions, items.filter(pl.Series(used))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, required=True, help="times beauty's size: 1, 10, 50 (others interpolate)")
    p.add_argument("--out", type=Path, required=True, help="folder for interactions.parquet and items.parquet")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    start = time.perf_counter()
    interactions, items = make(args.scale, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    interactions.write_parquet(args.out / "interactions.parquet")
    items.write_parquet(args.out / "items.parquet")
    print(f"scale {args.scale:g}: {interactions['user'].n_unique()} users, {items.height} items, "
          f"{interactions.height} interactions -> {args.out} ({time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    main()
