"""Benchmark the offline generator on this machine: training tokens/s, beam-search generation users/s and, when
`rerank` is on, retrieval + re-ranking users/s.

    python benchmarks/bench_generator.py --dataset beauty --threads 2 [--run outputs/runs/beauty/gloss_scratch/<time>]

Uses conf/model/gloss_scratch.yaml (override any key with --set key=value, e.g. --set backbone.hidden_size=256).
Without --run the weights are random: generation then stops at a random length, so pass the folder a run
saved for generation figures that match a trained model.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gloss.config import training_settings
from gloss.models.base import build_model

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--users", type=int, default=512, help="test users to generate for")
    ap.add_argument("--run", default=None, help="a finished run folder (its saved generator and settings are loaded)")
    ap.add_argument("--set", nargs="*", default=[], help="overrides of the model config, e.g. generation.batch_size=256")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = [f"paths.data_dir={os.environ.get('GLOSS_DATA_DIR', ROOT / 'data')}",
             f"paths.cache_dir={os.environ.get('GLOSS_CACHE_DIR', ROOT / '.cache')}"]
    overrides = [f"dataset={args.dataset}", "model=gloss_scratch", *paths] + [f"model.{s}" for s in args.set]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    data = instantiate(cfg.dataset)
    rec = build_model(cfg.model)
    rec.build_for(data, seed=0, run_dir=Path(args.run).expanduser() if args.run else None)
    model = rec.module.model
    print(f"{args.dataset}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {args.threads} threads")

    dm_cfg = training_settings(rec.recipe, cfg)["datamodule"]  # the recipe's, with the run's datamodule values
    dm = instantiate(dm_cfg, _partial_=True)(data=data, encoder=rec.encoder)
    dm.setup("fit")
    n_epoch = sum(len(ids) for ids, _ in dm.train)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    batches = iter(dm.train_dataloader())
    tokens, seconds = 0, 0.0
    for step in range(args.train_steps + 2):
        batch = next(batches)
        t0 = time.perf_counter()
        model(**batch, use_cache=False).loss.backward()
        opt.step()
        opt.zero_grad()
        if step >= 2:  # skip warm-up steps
            seconds += time.perf_counter() - t0
            tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel()
    tps = tokens / seconds
    print(f"training: {tps:,.0f} tokens/s; one epoch = {n_epoch:,} tokens = {n_epoch / tps / 60:.1f} min")

    model.eval()
    ex = data.split.examples("test")[: args.users]
    histories = data.split.histories(ex)
    t0 = time.perf_counter()
    queries = rec.queries(histories)
    dt = time.perf_counter() - t0
    g = rec.module.generation
    n_all = len(data.split.user_ids)
    print(f"generation (beam {g['num_beams']}, {g['num_return_sequences']} returned, <= {g['max_new_tokens']} tokens, "
          f"batch {g['batch_size']}): {len(histories) / dt:.1f} users/s; all {n_all:,} test users = {n_all / (len(histories) / dt) / 60:.1f} min")
    print("example:", queries[0][:2])
    if rec.rerank:
        rec.index_catalog(data)
        rec.rank(queries, histories, 10)  # warm-up: encodes the generated titles once
        t0 = time.perf_counter()
        generated = rec.rank(queries, histories, 10).items[:, : rec.rerank["generated"]]
        pools, collaborative = rec.candidate_pool(histories, generated)
        t1 = time.perf_counter()
        rec.rerank_pool(histories, pools, collaborative, 10)
        t2 = time.perf_counter()
        print(f"retrieval + pools: {len(histories) / (t1 - t0):.1f} users/s; rerank ({sum(map(len, pools)) / len(pools):.1f} "
              f"candidates/user, batch {rec.rerank['batch_size']}): {len(histories) / (t2 - t1):.1f} users/s; "
              f"all test users = {n_all / (len(histories) / (t2 - t1)) / 60:.1f} min")


if __name__ == "__main__":
    main()
