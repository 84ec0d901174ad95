"""Training a `TrainableRecommender` with the run's Lightning pieces, each a Hydra group: the Trainer (`trainer/`),
its callbacks (`callbacks/`: the ranking-evaluation callback, checkpoints, early stopping, progress) and the
DataModule (`datamodule/`), plus `EpochSeed` (random state per epoch from (seed, epoch), so that `ckpt_path=last`
resumes exactly the uninterrupted run). After fit the best checkpoint is restored on the Trainer's device
(Lightning's teardown moves the module to the CPU), so ranking runs where training ran."""
from __future__ import annotations

import inspect
import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, Timer
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig

from gloss.callbacks.epoch_seed import EpochSeed
from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.models.base import TrainableRecommender

log = logging.getLogger(__name__)


def instantiate_callbacks(cfg: DictConfig | None, run_dir: Path, recommender: TrainableRecommender, data: GlossData,
                          has_logger: bool) -> list[L.Callback]:
    """One callback per non-null node; a callback whose constructor takes `recommender` / `data` gets the run's;
    ModelCheckpoint with a null dirpath writes to <run folder>/checkpoints; LearningRateMonitor needs a logger."""
    callbacks = []
    for name, node in (cfg or {}).items():
        if not node:
            continue
        cls = get_class(node._target_)
        if issubclass(cls, LearningRateMonitor) and not has_logger:
            continue
        params = inspect.signature(cls).parameters
        extra = {key: value for key, value in (("recommender", recommender), ("data", data)) if key in params}
        if issubclass(cls, ModelCheckpoint) and node.get("dirpath") is None:
            extra["dirpath"] = str(Path(run_dir) / "checkpoints")
        callbacks.append(instantiate(node, _partial_=True)(**extra))  # objects are passed as-is, not merged into the config
    return callbacks


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """`last` = this run folder's checkpoints/last.ckpt (resume); any other value is a checkpoint path."""
    if ckpt_path is None:
        return None
    path = Path(run_dir) / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise GlossError(f"ckpt_path={ckpt_path}: no checkpoint at {path} (to resume, run with hydra.run.dir=<old run folder>)")
    return str(path)


def best_checkpoint(trainer: L.Trainer) -> ModelCheckpoint | None:
    return next((cb for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.monitor), None)


def training_record(trainer: L.Trainer | None) -> dict | None:
    """metrics.json's "training": epochs completed of max_epochs, and whether trainer.max_time cut the run short (its
    results are then those of a shorter training than configured); None when nothing was trained."""
    if trainer is None or trainer.state.fn != TrainerFn.FITTING:
        return None
    timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
    remaining = timer.time_remaining("train") if timer is not None else None
    return {"epochs_completed": trainer.current_epoch, "max_epochs": trainer.max_epochs,
            "cut_by_time": remaining is not None and remaining <= 0}


def warn_if_cut_by_time(trainer: L.Trainer) -> None:
    """A max_time cut is said loudly in run.log, not only in metrics.json."""
    record = training_record(trainer)
    if record is not None and record["cut_by_time"]:
        log.warning("BUDGET: trainer.max_time stopped training after %d of %s epochs; results are those of a shorter "
                    "run (trainer.max_time=null removes the guard)", record["epochs_completed"], record["max_epochs"])


def load_best_weights(recommender: TrainableRecommender, trainer: L.Trainer) -> None:
    """The best checkpoint's weights (when one was monitored and saved), on the module's current device."""
    module = recommender.lightning_module
    best = best_checkpoint(trainer)
    if best is not None and best.best_model_path:  # none under fast_dev_run or without validation
        state = torch.load(best.best_model_path, map_location=module.device, weights_only=False)
        # LoRA checkpoints hold only the adapters (GeneratorModule.on_save_checkpoint)
        module.load_state_dict(state["state_dict"], strict=getattr(module, "strict_loading", True))
        log.info("best checkpoint %s (%s=%.4f)", best.best_model_path, best.monitor, best.best_model_score)


def place_for_ranking(recommender: TrainableRecommender, trainer: L.Trainer) -> None:
    """Ranking runs where training ran: the Trainer's root device (after fit, Lightning's teardown has moved the
    module to the CPU), in eval mode."""
    module = recommender.lightning_module
    module.to(trainer.strategy.root_device)
    module.eval()


def train(cfg: DictConfig, recommender: TrainableRecommender, data: GlossData, run_dir: Path, loggers: list) -> L.Trainer:
    """Build the model for `data` and (cfg.train) fit it; returns the Trainer, whose device the model is left on."""
    L.seed_everything(cfg.seed, workers=True)
    recommender.build_for(data, cfg.seed)
    callbacks = instantiate_callbacks(cfg.get("callbacks"), run_dir, recommender, data, bool(loggers)) if cfg.train else []
    if cfg.train:  # not a callbacks/ node: a resumed run is the uninterrupted one whatever the callback list
        callbacks.append(EpochSeed(cfg.seed))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, default_root_dir=str(run_dir))
    if cfg.train:
        if cfg.get("datamodule") is None:
            raise GlossError("datamodule: a trained model needs one (its recipe sets it; e.g. datamodule=sequence)")
        datamodule = instantiate(cfg.datamodule, _partial_=True)(data=data, **recommender.datamodule_inputs())
        trainer.fit(recommender.lightning_module, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.ckpt_path, run_dir))
        warn_if_cut_by_time(trainer)
        load_best_weights(recommender, trainer)
        if trainer.is_global_zero:
            recommender.save(run_dir)
    place_for_ranking(recommender, trainer)
    return trainer
