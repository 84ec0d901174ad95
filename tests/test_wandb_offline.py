"""logger=wandb, offline by default: a run leaves <run>/wandb/offline-run-*/ with the config, the metrics and the
segment plot (what `wandb sync` uploads); a trained model's curves and the results reach W&B and CSV together.
Tiny synthetic data, no network."""
import csv
import json
import os
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from gloss.experiment import run_experiment
from gloss.models.base import ScoringRecommender, TrainableRecommender
from tests.conftest import REPO, TINY, composed, run_cli

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def tiny(tiny_root: Path, tmp_path: Path) -> dict:
    """Environment for a run on conftest's tiny dataset, with W&B's own folders kept inside tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # the config's default mode must hold
    env.update(
        GLOSS_DATA_DIR=str(tiny_root),
        GLOSS_CACHE_DIR=str(tmp_path / "cache"),
        OMP_NUM_THREADS="1",
        WANDB_CONFIG_DIR=str(tmp_path / "wandb_config"),
        WANDB_CACHE_DIR=str(tmp_path / "wandb_cache"),
        WANDB_DATA_DIR=str(tmp_path / "wandb_data"),
    )
    return env


@pytest.mark.slow
def test_wandb_offline_run_folder(tiny: dict, tmp_path: Path):
    run_dir = tmp_path / "run"
    args = [*TINY, "model=lis", "retriever=bm25", "logger=wandb", f"hydra.run.dir={run_dir}"]
    unset = {k: None for k in [*os.environ, "WANDB_MODE"] if k.startswith("WANDB_")}  # only the fixture's WANDB_*:
    proc = run_cli("run.py", args, tiny["GLOSS_DATA_DIR"], tiny["GLOSS_CACHE_DIR"], timeout=120,  # the config's
                   env={**unset, **tiny})  # default mode must hold
    assert proc.returncode == 0, proc.stderr[-3000:]

    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list((run_dir / "wandb").iterdir())  # offline mode by default, inside the run folder
    files = offline[0] / "files"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert json.loads((files / "metrics.json").read_text()) == metrics and metrics["model"] == "lis"
    assert "retriever:" in (files / "config_resolved.yaml").read_text()
    assert (files / "segments.png").read_bytes()[:8] == PNG
    images = list((files / "media" / "images").rglob("segments*.png"))
    assert len(images) == 1 and images[0].read_bytes()[:8] == PNG  # logged as wandb.Image
    table = json.loads(next((files / "media" / "table").rglob("examples*.table.json")).read_text())
    assert {"history (last 5)", "target", "top-5", "target rank"} <= set(table["columns"]) and 1 <= len(table["data"]) <= 8
    record = next(offline[0].glob("run-*.wandb")).read_bytes()  # what `wandb sync` uploads: config + history/summary
    for key in (b"test/recall@5", b"test/cold/ndcg@5", b"optimized_metric"):
        assert key in record, key


class TrainedPopularity(ScoringRecommender, TrainableRecommender):
    """A minimal trained model: item logits fit to the training targets by gloss.training with the run's Trainer and
    loggers, as every trained gloss model is (importable by Hydra as test_wandb_offline.*)."""

    name = "trained_pop"

    def build_for(self, data, seed, run_dir=None) -> None:
        self.module = ItemLogits(len(data.catalog))

    @property
    def lightning_module(self):
        return self.module

    def save(self, run_dir) -> None:
        torch.save(self.module.state_dict(), Path(run_dir) / "logits.pt")

    def score(self, histories):
        return self.module.logits.detach().numpy()[None].repeat(len(histories), 0)


class TrainTargets(L.LightningDataModule):
    def __init__(self, data, batch_size: int = 8):
        super().__init__()
        self.targets = torch.as_tensor(data.split.targets(data.split.examples("train")))
        self.batch_size = batch_size

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.targets, batch_size=self.batch_size)


class ItemLogits(L.LightningModule):
    def __init__(self, n_items: int):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(n_items))

    def training_step(self, targets, _):
        loss = torch.nn.functional.cross_entropy(self.logits.expand(len(targets), -1), targets)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1.0)


def test_trained_model_logs_curves_and_results_to_wandb_and_csv(tiny: dict, tmp_path: Path):
    logger = OmegaConf.create({"wandb": OmegaConf.load(REPO / "conf/logger/wandb.yaml"), "csv": OmegaConf.load(REPO / "conf/logger/csv.yaml")})
    overrides = [f"paths.data_dir={tiny['GLOSS_DATA_DIR']}", f"paths.cache_dir={tiny['GLOSS_CACHE_DIR']}", "dataset.name=tiny"]
    cfg = composed(*overrides, "model_name=trained_pop", "eval.val=true", "logger=none",
                   "model=cooc", "callbacks=none", "trainer.max_steps=4", "trainer.log_every_n_steps=1",
                   "+trainer.enable_checkpointing=false", "trainer.enable_progress_bar=false")
    with open_dict(cfg):
        cfg.model = {"_target_": f"{__name__}.TrainedPopularity",
                     "recipe": {"datamodule": {"_target_": f"{__name__}.TrainTargets", "batch_size": 8}}}
    cfg.logger = logger  # a mapping of logger nodes: both trackers at once
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # Hydra creates the run folder before the job starts
    with pytest.MonkeyPatch.context() as mp:
        for k, v in tiny.items():
            mp.setenv(k, v)
        summary = run_experiment(cfg, run_dir)["test"]

    rows = list(csv.DictReader(open(next((run_dir / "csv").rglob("metrics.csv")))))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 4 and all(np.isfinite(losses))  # the training curve: one point per step
    final = next(r for r in rows if r.get("test/recall@5"))
    assert float(final["test/recall@5"]) == pytest.approx(summary["overall"]["recall@5"])
    assert float(final["test/power/n_users"]) == summary["segments"]["power"]["n_users"]
    val = json.loads((run_dir / "metrics_val.json").read_text())
    assert val["split"] == "val" and float(final["val/ndcg@5"]) == pytest.approx(val["overall"]["ndcg@5"])

    record = next((run_dir / "wandb").glob("offline-run-*/run-*.wandb")).read_bytes()
    for key in (b"train/loss", b"test/recall@5", b"val/ndcg@5"):  # curves and results in the same W&B run
        assert key in record, key
