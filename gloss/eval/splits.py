"""Ranking a model's users on the evaluated splits: the split's examples (a fixed sample with eval.max_users), their
metrics, and the model's ablation variants on the same users (ablation.json / ablation.md)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from gloss.data import GlossData
from gloss.eval.metrics import Evaluation, evaluate_ranking
from gloss.eval.outputs import METRIC_KEYS, metrics_summary, write_atomic
from gloss.eval.sharded import engine_settings, rank_users
from gloss.models.base import Ranking, Recommender, TrainableRecommender

log = logging.getLogger("gloss")


def splits_to_rank(cfg: DictConfig) -> list[str]:
    """Test always; validation too with eval.val=true or when optimized_metric (what a sweeper reads) is a val/ metric
    (gloss.validation has checked those keys). Test last."""
    return ["val", "test"] if cfg.eval.get("val", False) or cfg.get("optimized_metric") is not None else ["test"]


def ranking_device(model: Recommender) -> str:
    module = model.lightning_module if isinstance(model, TrainableRecommender) else None
    params = next(module.parameters(), None) if module is not None else None
    return str(params.device) if params is not None else "cpu"


def evaluate_split(model: Recommender, data: GlossData, split: str, eval_cfg: DictConfig,
                   seed: int) -> tuple[Evaluation, np.ndarray, np.ndarray, Ranking]:
    """(evaluation, examples [n, 2] (user, cut), targets, ranking) of `split`'s users (at most eval.max_users)."""
    from gloss.eval import sample_examples

    examples = sample_examples(model.examples_for(split, data), eval_cfg.get("max_users"), seed)
    histories = data.split.histories(examples)
    targets = data.split.targets(examples)
    log.info("%s: ranking %d users", split, len(histories))
    device = ranking_device(model)
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    ranking = rank_users(model, histories, eval_cfg.k, engine_settings(eval_cfg.get("engine"), "eval.engine"))
    seconds = time.perf_counter() - t0
    memory = (f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
              if device.startswith("cuda") else "")
    log.info("%s: ranked %d users in %.1fs (%.1f users/s%s)", split, len(histories), seconds,
             len(histories) / max(seconds, 1e-9), memory)
    ev = evaluate_ranking(ranking.items, targets, data.segments()[examples[:, 0]])
    log.info("%s: %s", split, ", ".join(f"{key} {ev.overall[key]:.4f}" for key in METRIC_KEYS))
    return ev, examples, targets, ranking


def write_ablation(run_dir: Path, model: Recommender, data: GlossData, summaries: dict[str, dict],
                   eval_cfg: DictConfig, seed: int) -> None:
    """The model's variants (Recommender.variants), each ranked on the same users of every split as the model, next to
    its own row: ablation.json ({label: {split: summary}}) and ablation.md. Before metrics.json (a finished run)."""
    variants = model.variants()
    if not variants:
        return
    rows = {"(full model)": summaries}
    for label, variant in variants.items():
        rows[label] = {}
        for split in summaries:
            ev, *_ = evaluate_split(variant, data, split, eval_cfg, seed)
            rows[label][split] = metrics_summary(data.name, label, summaries[split]["retriever"], split, ev)
    write_atomic(run_dir / "ablation.json", json.dumps(rows, indent=2) + "\n")
    md = []
    for split in summaries:
        md += [f"# Ablation on {data.name} ({split}, {summaries[split]['n_users']} users)", "",
               "| variant | " + " | ".join(METRIC_KEYS) + " |", "|---|" + "---|" * len(METRIC_KEYS)]
        md += [f"| {label} | " + " | ".join(f"{row[split]['overall'][k]:.4f}" for k in METRIC_KEYS) + " |"
               for label, row in rows.items()]
        md.append("")
    write_atomic(run_dir / "ablation.md", "\n".join(md))
    print("\n" + "\n".join(md))
