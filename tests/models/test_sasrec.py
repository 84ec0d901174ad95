import numpy as np
import pytest
import torch

from gloss.data.padding import left_pad_item_ids, trim_left_padding
from gloss.data.samplers import LengthGroupedBatchSampler
from gloss.data.sequence_datamodule import SequenceDataModule
from gloss.errors import GlossError
from tests.models.factory import make_model
from tests.models.id_helpers import (
    assert_causal,
    assert_padding_invariant, assert_scores_catalog, built, compose_model, fit_model, recall_at_5,
)


def test_causal_masking_future_items_never_change_earlier_positions():
    model = built(make_model("sasrec", max_len=10, blocks=2, heads=2, hidden=16))
    assert_causal(model)


def test_padding_and_catalog_scores():
    model = built(make_model("sasrec", max_len=12, hidden=16))
    assert_padding_invariant(model)
    assert_scores_catalog(model)


def test_datamodule_left_pads_ids_and_keeps_val_out_of_training(rule):
    assert left_pad_item_ids([np.array([4, 0])], 4).tolist() == [[0, 0, 5, 1]]  # id = index + 1, 0 = padding
    dm = SequenceDataModule(rule, max_len=5, batch_size=8, seed=0)
    train = rule.split.train_sequences()
    assert dm.train_tokens.shape == (len(rule.split.sequences), 6)
    for row, s in zip(dm.train_tokens, train):
        assert row[row != 0].tolist() == (s[-6:] + 1).tolist()
    val_targets = rule.split.targets(rule.split.val_examples())
    assert (dm.val_tokens[:, -1] - 1).tolist() == val_targets.tolist()


def test_length_buckets_cover_every_row_once_and_trimming_keeps_real_items():
    lengths = torch.from_numpy(np.random.default_rng(0).integers(1, 40, 1000))
    sampler = LengthGroupedBatchSampler(lengths, batch_size=32, seed=0, group=4, rng="torch")
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert list(sampler) == batches  # a function of (seed, epoch): Lightning calls set_epoch before each epoch
    sampler.set_epoch(1)
    assert list(sampler) != batches  # reshuffled each epoch
    ids = left_pad_item_ids([np.array([3, 4]), np.array([5])], 6)
    assert trim_left_padding(ids).tolist() == [[4, 5], [0, 6]]


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_learns_deterministic_next_item_rule(rule, tmp_path, loss):
    cfg = compose_model(
        "sasrec", f"model.loss={loss}", "model.hidden=32", "model.dropout=0.1", "model.max_len=10",
        "datamodule.batch_size=32", "model.lr=5e-3", f"trainer.max_epochs={8 if loss == 'ce' else 15}", "callbacks.early_stopping.patience=50",
    )
    model = fit_model(cfg, rule, tmp_path)
    assert recall_at_5(model, rule) >= 0.95
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_last_checkpoint_is_every_epoch_and_resume_continues_step_count(rule, tmp_path):
    # lr=0: val/ndcg@5 never improves after epoch 0, so "last" must not depend on improvements
    overrides = ["model.hidden=16", "model.max_len=10", "datamodule.batch_size=64", "callbacks.early_stopping.patience=50", "model.lr=0"]
    steps_per_epoch = len(SequenceDataModule(rule, max_len=10, batch_size=64, seed=0).train_dataloader())
    fit_model(compose_model("sasrec", *overrides, "trainer.max_epochs=2"), rule, tmp_path)
    first = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert first["global_step"] == 2 * steps_per_epoch
    fit_model(compose_model("sasrec", *overrides, "trainer.max_epochs=3"), rule, tmp_path, ckpt_path="last")
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3 * steps_per_epoch


def test_missing_checkpoint_is_a_clear_error(rule, tmp_path):
    cfg = compose_model("sasrec", "model.hidden=8", "model.max_len=5")
    with pytest.raises(GlossError, match="no checkpoint"):
        fit_model(cfg, rule, tmp_path, ckpt_path="last")


def test_bad_loss_name_is_rejected():
    with pytest.raises(GlossError, match="model.loss"):
        make_model("sasrec", loss="bpr")


def test_debug_fast_config_smoke_runs(rule, tmp_path):
    model = fit_model(compose_model("sasrec", "debug=fast", "model.hidden=8", "model.max_len=5"), rule, tmp_path)
    assert model.score([np.array([1, 2])]).shape == (1, len(rule.catalog))
