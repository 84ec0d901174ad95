"""Fitting a model as what it is (`Recommender.fit_by` chooses): heuristics count; a `TrainableRecommender` trains
with its recipe (the `recipe` of its model node: DataModule, Trainer and callback values) under the run's trainer/,
callbacks/ and datamodule values (the hardware and the user's overrides, which win); a composite fits each part the
same way, each with the part's own recipe, in <run>/parts/<name>. Training adds `EpochSeed` (random state per epoch
from (seed, epoch), so that `ckpt_path=last` resumes exactly the uninterrupted run); after fit the best checkpoint is
restored on the Trainer's device (Lightning's teardown moves the module to the CPU), so ranking runs where training
ran."""
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
from gloss.cli import sigterm_left_to_lightning
from gloss.config import training_settings
from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.models.base import Recommender, TrainableRecommender

log = logging.getLogger(__name__)


def instantiate_callbacks(nodes: dict, run_dir: Path, recommender: TrainableRecommender, data: GlossData,
                          has_logger: bool) -> list[L.Callback]:
    """One callback per node; a callback whose constructor takes `recommender` / `data` gets the run's;
    ModelCheckpoint with a null dirpath writes to <run folder>/checkpoints; LearningRateMonitor needs a logger."""
    callbacks = []
    for node in nodes.values():
        cls = get_class(node["_target_"])
        if issubclass(cls, LearningRateMonitor) and not has_logger:
            continue
        params = inspect.signature(cls).parameters
        extra = {key: value for key, value in (("recommender", recommender), ("data", data)) if key in params}
        if issubclass(cls, ModelCheckpoint) and node.get("dirpath") is None:
            extra["dirpath"] = str(Path(run_dir) / "checkpoints")
        callbacks.append(instantiate(node, _partial_=True)(**extra))  # objects are passed as-is, not merged into the config
    return callbacks


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """`last` = this run folder's checkpoints/last.ckpt (resume); any other value is a checkpoint path. The file must
    load as tensors and plain values (torch.load weights_only): a truncated or planted file is one line, before any
    data is loaded (gloss.experiment checks it first)."""
    if ckpt_path is None:
        return None
    path = Path(run_dir) / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise GlossError(f"ckpt_path={ckpt_path}: no checkpoint at {path} (to resume, run with hydra.run.dir=<old run folder>)")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GlossError(f"ckpt_path={ckpt_path}: {path} is not a readable checkpoint of tensors and plain values "
                         f"(truncated or not a checkpoint: {type(e).__name__}); refused") from e
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


def load_best_weights(recommender: TrainableRecommender, trainer: L.Trainer, run_dir: Path) -> None:
    """The best checkpoint's weights (when one was monitored and saved), on the module's current device. The path
    comes from the checkpoint callback's state, which a resumed run reads from a file: it must lie in this run's
    checkpoints/ folder, and only tensors and plain values are unpickled (torch.load weights_only)."""
    module = recommender.lightning_module
    best = best_checkpoint(trainer)
    if best is None or not best.best_model_path:  # none under fast_dev_run or without validation
        return
    path = Path(best.best_model_path).resolve()
    if path.parent != (Path(run_dir) / "checkpoints").resolve():
        raise GlossError(f"best checkpoint {best.best_model_path}: not in this run's checkpoints folder; refused")
    try:
        state = torch.load(path, map_location=module.device, weights_only=True)
    except Exception as e:  # an unpicklable or planted file
        raise GlossError(f"{path}: not a checkpoint of tensors and plain values ({type(e).__name__}); refused") from e
    # LoRA checkpoints hold only the adapters (GeneratorModule.on_save_checkpoint)
    module.load_state_dict(state["state_dict"], strict=getattr(module, "strict_loading", True))
    log.info("best checkpoint %s (%s=%.4f)", best.best_model_path, best.monitor, best.best_model_score)


def place_for_ranking(recommender: TrainableRecommender, trainer: L.Trainer) -> None:
    """Ranking runs where training ran: the Trainer's root device (after fit, Lightning's teardown has moved the
    module to the CPU), in eval mode."""
    module = recommender.lightning_module
    module.to(trainer.strategy.root_device)
    module.eval()


class Fitter:
    """Fits models for one run (the run's config `cfg`: trainer/, callbacks/, datamodule overrides, seed, train,
    ckpt_path) into `run_dir`. With `saved_run`, trained models are rebuilt from that run folder's weights instead
    (eval.py, predict.py), on the configured Trainer's device."""

    def __init__(self, cfg: DictConfig, run_dir: Path, loggers: list | None = None, saved_run: Path | None = None):
        self.cfg, self.run_dir, self.loggers, self.saved_run = cfg, Path(run_dir), loggers or [], saved_run

    def fit(self, model: Recommender, data: GlossData) -> L.Trainer | None:
        """Returns the Trainer the model was trained with (None for heuristics and composites)."""
        return model.fit_by(self, data)

    def fit_part(self, part: Recommender, data: GlossData, name: str) -> None:
        """A composite's part, in <run>/parts/<name>, without loggers (its val/* would mix with the composite's)."""
        if self.saved_run is not None:
            raise GlossError("eval.py cannot rebuild a composite model from its run folder yet; rerun it with run.py "
                             "(its parts are refit)")
        folder = self.run_dir / "parts" / name
        log.info("fitting part %s (%s) in %s", name, type(part).__name__, folder)
        Fitter(self.cfg, folder).fit(part, data)

    def train(self, recommender: TrainableRecommender, data: GlossData) -> L.Trainer:
        """Build the model for `data` and (cfg.train) fit it; returns the Trainer, whose device the model is left on."""
        cfg = self.cfg
        settings = training_settings(recommender.recipe, cfg)
        L.seed_everything(cfg.seed, workers=True)
        if self.saved_run is not None:
            recommender.build_for(data, cfg.seed, run_dir=self.saved_run)
            trainer = instantiate(settings["trainer"], logger=False, default_root_dir=str(self.run_dir))
            place_for_ranking(recommender, trainer)
            return trainer
        recommender.build_for(data, cfg.seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        callbacks = []
        if cfg.train:  # EpochSeed is not a callbacks/ node: a resumed run is the uninterrupted one whatever the list
            callbacks = instantiate_callbacks(settings["callbacks"], self.run_dir, recommender, data, bool(self.loggers))
            callbacks.append(EpochSeed(cfg.seed))
        trainer: L.Trainer = instantiate(settings["trainer"], callbacks=callbacks, logger=self.loggers or False,
                                         default_root_dir=str(self.run_dir))
        if cfg.train:
            if settings["datamodule"] is None:
                raise GlossError(f"{type(recommender).__name__}: a trained model needs a DataModule "
                                 "(model.recipe.datamodule)")
            datamodule = instantiate(settings["datamodule"], _partial_=True)(data=data, **recommender.datamodule_inputs())
            with sigterm_left_to_lightning():
                trainer.fit(recommender.lightning_module, datamodule=datamodule,
                            ckpt_path=resolve_ckpt_path(cfg.ckpt_path, self.run_dir))
            warn_if_cut_by_time(trainer)
            load_best_weights(recommender, trainer, self.run_dir)
            if trainer.is_global_zero:
                recommender.save(self.run_dir)
        place_for_ranking(recommender, trainer)
        return trainer
