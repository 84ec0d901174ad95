"""Choose model=tgh's knobs on a dataset's validation users: a small grid, one table sorted by val NDCG@5.

    GLOSS_DATA_DIR=... python scripts/tune_tgh.py dataset=toys [--grid direction=out max_rings=2,3] [--out f.md]

Each grid point is the model conf/model/tgh.yaml builds, with the point's values; the data, the retriever's catalog
embeddings and the ranking of the validation users are exactly a run's (`python run.py model=tgh eval.val=true`), so
the chosen values go to conf/tuned/tgh_<dataset>.yaml. No test user is ranked.
"""
from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from gloss.eval.metrics import evaluate_ranking
from gloss.models.base import build_model

CONF = str(Path(__file__).resolve().parents[1] / "conf")
GRID = {
    "n_last": [1, 2],
    "max_rings": [1, 2, 3],
    "direction": ["out", "both"],
    "within": ["similarity", "count", "blend"],
    "exclude_seen": [False, True],
}
BLEND_WEIGHTS = [0.25, 0.5, 0.75]  # count_weight, for within=blend only


def points(grid: dict[str, list], weights: list[float]) -> list[dict]:
    out = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        out.extend({**point, "count_weight": w} for w in (weights if point["within"] == "blend" else [0.5]))
    return out


def parsed(text: str) -> tuple[str, list]:
    """`key=v1,v2` -> (key, [v1, v2]) with YAML's scalars (true, 2, 0.5)."""
    key, _, values = text.partition("=")
    if key not in (*GRID, "count_weight") or not values:
        raise SystemExit(f"--grid {text}: expected key=v1,v2 with key one of {', '.join((*GRID, 'count_weight'))}")
    return key, [yaml.safe_load(v) for v in values.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset=toys")
    parser.add_argument("--grid", nargs="*", default=[], help="narrow the grid: key=v1,v2 (e.g. direction=out)")
    parser.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = parser.parse_args()
    grid = {**GRID, **dict(parsed(g) for g in args.grid)}
    weights = grid.pop("count_weight", BLEND_WEIGHTS)
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        paths = [f"paths.data_dir={os.environ.get('GLOSS_DATA_DIR', Path.cwd() / 'data')}",  # conf/paths, no Hydra run
                 f"paths.cache_dir={os.environ.get('GLOSS_CACHE_DIR', Path.cwd() / '.cache')}"]
        cfg = compose("config", overrides=["model=tgh", "~tuned", *paths, *args.overrides])
    data = instantiate(cfg.dataset)
    examples = data.split.val_examples()
    histories, targets = data.split.histories(examples), data.split.targets(examples)
    segments = data.segments()[examples[:, 0]]
    rows, t0 = [], time.perf_counter()
    for point in points(grid, weights):
        with open_dict(cfg):
            cfg.model.update(point)
        model = build_model(cfg.model)
        model.fit(data)
        overall = evaluate_ranking(model.recommend(histories, 10).items, targets, segments).overall
        rows.append((overall["ndcg@5"], overall["recall@5"], overall["ndcg@10"], overall["recall@10"], point))
    rows.sort(key=lambda r: (-r[0], -r[1]))
    keys = list(rows[0][4])
    lines = [f"model=tgh on {data.name}: {len(rows)} settings, validation users: {len(histories)} "
             f"({time.perf_counter() - t0:.0f} s)", "",
             "| " + " | ".join(keys) + " | val N@5 | val R@5 | val N@10 | val R@10 |",
             "|" + "---|" * (len(keys) + 4)]
    lines += ["| " + " | ".join(str(r[4][k]) for k in keys) + f" | {r[0]:.4f} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:.4f} |"
              for r in rows]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
