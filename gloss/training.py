"""What every trained model shares: the run's Trainer (with the model's own overrides), checkpoints, and
training with validation ranking metrics, early stopping and the best checkpoint restored."""
from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from gloss.callbacks import RankingEvalCallback
from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.models.base import Recommender, RunContext

log = logging.getLogger(__name__)
MONITOR = "val/ndcg@5"
DEFAULT_TRAINER = {"_target_": "lightning.Trainer", "accelerator": "auto", "devices": 1}


def make_trainer(ctx: RunContext, callbacks: list, overrides: dict) -> L.Trainer:
    """The run's Trainer config (or an `accelerator=auto` default) with the model's overrides (epochs,
    accumulation, ...; None values are ignored), our callbacks, the run's loggers and the run folder."""
    cfg = ctx.trainer if ctx.trainer is not None else DEFAULT_TRAINER
    cfg = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return instantiate(cfg, callbacks=callbacks, logger=ctx.loggers or False, default_root_dir=str(ctx.run_dir))


def resolve_ckpt_path(ctx: RunContext) -> str | None:
    """`last` = this run folder's checkpoints/last.ckpt (resume); any other value is a checkpoint path."""
    if ctx.ckpt_path is None:
        return None
    path = Path(ctx.run_dir) / "checkpoints" / "last.ckpt" if ctx.ckpt_path == "last" else Path(ctx.ckpt_path)
    if not path.is_file():
        raise GlossError(f"ckpt_path={ctx.ckpt_path}: no checkpoint at {path} (to resume, run with hydra.run.dir=<old run folder>)")
    return str(path)


def fit_on_validation(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    recommender: Recommender,
    data: GlossData,
    ctx: RunContext,
    overrides: dict,
    val_max_users: int | None,
    patience: int | None,
    strict: bool = True,
) -> L.Trainer:
    """Train `module`, ranking the validation users after every epoch (`RankingEvalCallback` -> val/ndcg@5), with the
    best checkpoint by val/ndcg@5, an unmonitored last.ckpt every epoch (what ckpt_path=last resumes: a monitored
    ModelCheckpoint's save_last only saves on improvement), optional early stopping; then reload the best weights."""
    folder = Path(ctx.run_dir) / "checkpoints"
    best = ModelCheckpoint(dirpath=folder, filename="best-{epoch}", monitor=MONITOR, mode="max")
    callbacks = [
        RankingEvalCallback(recommender, data, k=10, max_users=val_max_users, seed=ctx.seed),
        best,
        ModelCheckpoint(dirpath=folder, filename="last", enable_version_counter=False),
    ]
    if patience:
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max", patience=patience))
    trainer = make_trainer(ctx, callbacks, overrides)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resolve_ckpt_path(ctx))
    if best.best_model_path:  # none under fast_dev_run: keep the last weights
        state = torch.load(best.best_model_path, map_location=module.device, weights_only=False)
        module.load_state_dict(state["state_dict"], strict=strict)
        log.info("best checkpoint %s (%s=%.4f)", best.best_model_path, MONITOR, best.best_model_score)
    module.eval()
    return trainer
