"""Experiment trackers: the `logger` config group -> Lightning loggers, and the end-of-run results they receive.

A logger config is empty (none), one `_target_` node (logger=wandb / logger=csv), or a mapping of such nodes
(several trackers at once). Every logger writes inside the run folder: `save_dir` is set to it here.
Trained models get the list on their Trainer (gloss.training: training curves);
after the test evaluation every logger receives the resolved config and the test metrics, and W&B also
the per-segment summary, the segment plot and an examples table (gloss.logging_wandb).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gloss.data import GlossData
from gloss.models.base import Recommender

if TYPE_CHECKING:  # importing Lightning costs seconds; runs without a logger or Trainer skip it
    from lightning.pytorch.loggers import Logger


def instantiate_loggers(cfg: DictConfig | None, run_dir: Path, run_name: str) -> list["Logger"]:
    """A node whose `name` is null gets `run_name` (e.g. beauty-lis-bm25) as its run name."""
    if not cfg:
        return []
    nodes = [cfg] if "_target_" in cfg else [node for node in cfg.values() if node and "_target_" in node]
    loggers = []
    for node in nodes:
        extra = {"name": run_name} if "name" in node and node.name is None else {}
        loggers.append(instantiate(node, save_dir=str(run_dir), **extra))
    return loggers


def flat_metrics(summary: dict) -> dict[str, float]:
    """Flat metric names: test/recall@5, ..., test/<segment>/recall@5, test/<segment>/n_users."""
    out = {f"{summary['split']}/{k}": float(v) for k, v in summary["overall"].items()}
    for seg, values in summary["segments"].items():
        out.update({f"{summary['split']}/{seg}/{k}": float(v) for k, v in values.items()})
    return out


def log_results(
    loggers: list["Logger"],
    cfg: DictConfig,
    summaries: dict[str, dict],
    run_dir: Path,
    model: Recommender,
    data: GlossData,
    examples: np.ndarray,
    items: np.ndarray,
) -> None:
    """Send the finished run (resolved config, metrics of each evaluated split) to every logger and close it;
    W&B also gets the test segment plot, an examples table of a few test users (`examples` rows, ranked `items`)
    and the result files."""
    if not loggers:
        return
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics({k: v for summary in summaries.values() for k, v in flat_metrics(summary).items()})
        logger.save()
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            from gloss.logging_wandb import finish_wandb_run

            finish_wandb_run(logger.experiment, summaries["test"], run_dir, model, data, examples, items)
