"""What every trained model shares: the run's Trainer (with the model's own overrides) and checkpoint resolution."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gloss.errors import GlossError
from gloss.models.base import RunContext

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
