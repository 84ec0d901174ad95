"""Benchmark (not a test): index build, retrieval for all test users, and metric computation, with users/s.

    python benchmarks/bench_retrieval.py dataset=beauty retriever=dense model=lis [--repeat 3]

Any Hydra override of conf/config.yaml is accepted. Index build is timed twice: cold (embeddings
computed, unless already in the cache) and warm (from the content-keyed cache).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gloss.eval import evaluate_ranking

CONF = Path(__file__).resolve().parents[1] / "conf"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions of retrieval + metrics")
    parser.add_argument("--fresh-cache", action="store_true", help="empty temporary cache: time encoding from scratch")
    args, overrides = parser.parse_known_args()
    if args.fresh_cache:
        overrides.append(f"paths.cache_dir={tempfile.mkdtemp(prefix='gloss-bench-')}")
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    cfg.hydra.runtime.cwd = str(Path.cwd())  # resolves ${hydra:runtime.cwd} in paths without a Hydra run
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    data, t_data = timed(lambda: instantiate(cfg.dataset))
    model = instantiate(cfg.model)
    _, t_index = timed(lambda: model.fit(data))
    _, t_index_warm = timed(lambda: model.fit(data))
    ex = data.split.test_examples()
    histories, targets, segments = data.split.histories(ex), data.split.targets(ex), data.segments()
    _, t_first = timed(lambda: model.recommend(histories, cfg.eval.k))
    retrieve, metric = [], []
    for _ in range(args.repeat):
        ranking, t = timed(lambda: model.recommend(histories, cfg.eval.k))
        retrieve.append(t)
        ev, t = timed(lambda: evaluate_ranking(ranking.items, targets, segments).by_segment())
        metric.append(t)
    n = len(histories)
    r, m = statistics.median(retrieve), statistics.median(metric)
    print(f"dataset={data.name} model={cfg.model._target_.rsplit('.', 1)[-1]} users={n} items={len(data.catalog)} k={cfg.eval.k}")
    print(f"load data        {t_data:8.2f} s")
    print(f"index build      {t_index:8.2f} s (first)  {t_index_warm:8.2f} s (cached)")
    print(f"retrieval        {t_first:8.2f} s first (queries encoded unless cached) -> {n / t_first:10.0f} users/s")
    print(f"retrieval        {r:8.2f} s median of {args.repeat}, cached  -> {n / r:10.0f} users/s")
    print(f"metrics          {m:8.3f} s median of {args.repeat}  -> {n / m:10.0f} users/s")
    print(f"end to end       {r + m:8.2f} s  -> {n / (r + m):10.0f} users/s (retrieval + metrics)")


if __name__ == "__main__":
    main()
