"""Resume = the uninterrupted run: a run killed after an epoch and resumed with ckpt_path=last (same config) ends
with exactly the weights and metrics of the run that was never interrupted (same batches, same dropout masks, same
optimizer and schedule state)."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from omegaconf import open_dict
from torch.utils.data import DataLoader

from gloss.data.samplers import LengthGroupedBatchSampler
from gloss.eval import evaluate_ranking
from tests.models.conftest import rule_data
from tests.models.id_helpers import compose_model, fit_model


class Killed(Exception):
    """Stands for the process being killed (nothing after it runs: no extra checkpoint, no teardown save)."""


class KillAtEpochStart(L.Callback):
    """Raise at the start of epoch `epoch`, i.e. after the last.ckpt of epoch `epoch - 1` was written."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise Killed(f"killed at the start of epoch {self.epoch}")


def with_kill(cfg, epoch: int):
    with open_dict(cfg):
        cfg.callbacks.kill = {"_target_": f"{__name__}.KillAtEpochStart", "epoch": epoch}
    return cfg


def last_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"


def assert_same_run(uninterrupted: Path, resumed: Path) -> None:
    a, b = last_state(uninterrupted), last_state(resumed)
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    assert_same_tensors(a["state_dict"], b["state_dict"])
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        assert_same_tensors(sa, sb)


@pytest.mark.parametrize("group, rng", [(4, "torch"), (64, "numpy")])  # the sequence and the prompt DataModule's
def test_batches_are_a_function_of_seed_and_lightnings_epoch(group, rng):
    lengths = np.random.default_rng(0).integers(1, 40, 203)

    def make(rank: int = 0, world_size: int = 1):
        return LengthGroupedBatchSampler(lengths, 8, seed=3, group=group, rng=rng, rank=rank, world_size=world_size)

    loader = DataLoader(range(len(lengths)), batch_sampler=make())
    batches = iter(loader)  # Lightning creates a fit's first iterator before it sets that epoch (resume: not 0)
    _set_sampler_epoch(loader, 2)  # what Lightning calls before each training epoch
    epoch2 = [b.tolist() for b in batches]
    fresh = make()
    fresh.set_epoch(2)
    assert list(fresh) == epoch2  # nothing but (seed, epoch): a resumed run gets the uninterrupted run's batches
    assert sorted(i for b in epoch2 for i in b) == list(range(len(lengths)))
    fresh.set_epoch(1)
    assert list(fresh) != epoch2
    shards = []  # DDP: each rank its share of the same epoch list, the same number of batches on every rank
    for rank in range(2):
        shard = make(rank, 2)
        shard.set_epoch(2)
        shards.append(list(shard))
    n = len(make(0, 2))
    assert len(shards[0]) == len(shards[1]) == n and shards == [epoch2[0::2][:n], epoch2[1::2][:n]]


def test_resumed_sasrec_is_the_uninterrupted_run(tmp_path):
    data = rule_data(n_items=20, n_users=120, length=8)
    overrides = ["model.hidden=16", "model.max_len=8", "model.dropout=0.3", "datamodule.batch_size=16",
                 "trainer.max_epochs=3", "callbacks.early_stopping.patience=50"]
    straight = fit_model(compose_model("sasrec", *overrides), data, tmp_path / "a")

    with pytest.raises(Killed):
        fit_model(with_kill(compose_model("sasrec", *overrides), 1), data, tmp_path / "b")
    assert last_state(tmp_path / "b")["epoch"] == 0
    resumed = fit_model(compose_model("sasrec", *overrides), data, tmp_path / "b", ckpt_path="last")

    assert_same_run(tmp_path / "a", tmp_path / "b")
    assert_same_tensors(straight.state_dict(), resumed.state_dict())  # the kept (best) weights
    examples = data.split.examples("test")
    histories, targets, segments = data.split.histories(examples), data.split.targets(examples), data.segments()[examples[:, 0]]
    metrics = [evaluate_ranking(m.recommend(histories, 10).items, targets, segments).overall for m in (straight, resumed)]
    assert metrics[0] == metrics[1]


def test_resumed_generator_is_the_uninterrupted_run(tmp_path):
    from tests.models.test_generator import recommender, run_cfg, tiny_data, train

    data = tiny_data()
    straight = recommender(tmp_path, "svd")
    train(run_cfg(3), straight, data, tmp_path / "a")

    with pytest.raises(Killed):
        train(with_kill(run_cfg(3), 1), recommender(tmp_path, "svd"), data, tmp_path / "b")
    resumed = recommender(tmp_path, "svd")
    train(run_cfg(3, "last"), resumed, data, tmp_path / "b")

    assert_same_run(tmp_path / "a", tmp_path / "b")
    assert_same_tensors(straight.lightning_module.state_dict(), resumed.lightning_module.state_dict())
    histories = data.split.histories(data.split.examples("test"))
    assert (straight.recommend(histories, k=10).items == resumed.recommend(histories, k=10).items).all()
