"""model.loss=sampled (id_base.catalog_loss): sampled softmax with shared negatives, next to the default full CE."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gloss.data.padding import left_pad_item_ids
from gloss.errors import GlossError
from tests.models.factory import make_model
from tests.models.id_helpers import built, compose_model, fit_model, recall_at_5

MODELS = ["sasrec", "bert4rec", "gru4rec", "bsarec"]
# training_loss of each model's YAML default (loss=ce) on the batch below, computed with the code before
# model.loss=sampled existed: the default stays bit for bit what it was
BEFORE = {"sasrec": "0x1.b31ccc0000000p+1", "bert4rec": "0x1.b5647a0000000p+1", "gru4rec": "0x1.b378e60000000p+1",
          "bsarec": "0x1.b3cf060000000p+1"}


def tiny(name: str, **overrides):
    return built(make_model(name, max_len=8, hidden=16, **overrides), n_items=30).train()


def batch() -> torch.Tensor:
    tokens = torch.randint(1, 31, (6, 9), generator=torch.Generator().manual_seed(1))
    tokens[0, :4] = 0
    tokens[3, :7] = 0
    return tokens


@pytest.mark.parametrize("name", MODELS)
def test_default_loss_is_full_ce_bit_identical_to_before(name):
    torch.set_num_threads(1)
    model = tiny(name)
    assert model.loss == "ce"
    torch.manual_seed(2)
    assert model.training_loss(batch()).item().hex() == BEFORE[name]


def states_targets_items(n_items: int = 30, n: int = 40, h: int = 8):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(n, h, generator=g), torch.randint(0, n_items, (n,), generator=g),
            torch.randn(n_items, h, generator=g))


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_sampled_with_the_whole_catalog_as_negatives_is_full_ce(sampling):
    model = tiny("sasrec", loss="sampled", negatives=30, negative_sampling=sampling)
    model.set_sampling_counts(np.arange(30, dtype=np.float32))
    states, targets, items = states_targets_items()
    torch.testing.assert_close(model.catalog_loss(states, targets, items), F.cross_entropy(states @ items.T, targets))


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_sampled_loss_tends_to_full_ce_with_many_negatives(sampling):
    """The logQ-corrected sample estimates the rest of the catalog's partition sum: 4,000 draws (with replacement) of
    5,000 items, uniform or from a skewed popularity, give the full CE within a percent."""
    n = 5000
    model = tiny("sasrec", loss="sampled", negatives=4000, negative_sampling=sampling)
    model.n_items = n
    rng = np.random.default_rng(0)
    model.set_sampling_counts(1000.0 / rng.permutation(np.arange(1, n + 1)))
    states, targets, items = states_targets_items(n_items=n, n=200)
    items = items * 0.5
    full = F.cross_entropy(states @ items.T, targets).item()
    torch.manual_seed(0)
    assert model.catalog_loss(states, targets, items).item() == pytest.approx(full, rel=0.01)
    few = tiny("sasrec", loss="sampled", negatives=8, negative_sampling=sampling)
    few.n_items, few.sampling_probs = n, model.sampling_probs
    assert abs(few.catalog_loss(states, targets, items).item() - full) > 0.01 * full  # the test can tell


def test_popularity_q_is_training_counts_plus_one_and_masks_the_target(rule):
    model = make_model("sasrec", max_len=8, hidden=16, loss="sampled", negatives=5, negative_sampling="popularity")
    model.build_for(rule, seed=0)
    counts = rule.training_counts() + 1
    torch.testing.assert_close(model.sampling_probs, torch.as_tensor(counts / counts.sum()))
    states, targets, items = states_targets_items()
    model.sampling_probs = torch.zeros(30)
    model.sampling_probs[targets[0]] = 1.0  # every draw is row 0's target: row 0 has no negative left
    logits_row0 = model.catalog_loss(states[:1], targets[:1], items)
    assert logits_row0.item() == 0.0  # softmax over the target alone


def full_ce(model, tokens: torch.Tensor) -> float:
    """The model's loss=ce on `tokens` in eval mode (no dropout; BERT4Rec's masks seeded): what sampled training
    should lower."""
    model.eval()
    model.loss = "ce"
    torch.manual_seed(5)
    with torch.no_grad():
        value = model.training_loss(tokens).item()
    model.train()
    model.loss = "sampled"
    return value


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
@pytest.mark.parametrize("name", MODELS)
def test_sampled_loss_is_finite_has_gradients_and_lowers_full_ce(name, sampling, rule):
    """40 AdamW steps on one batch with 8 negatives of 30 items: the loss stays finite, gradients reach the item
    embeddings and the rest of the network, and the full-catalog CE goes down (BERT4Rec's Cloze task the least)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = make_model(name, max_len=8, hidden=16, loss="sampled", negatives=8, negative_sampling=sampling)
    model.build_for(rule, seed=0)
    model.train()
    tokens = left_pad_item_ids(rule.split.train_sequences()[:64], 9)
    before = full_ce(model, tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)
    for step in range(40):
        loss = model.training_loss(tokens)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            grads = {n: p.grad for n, p in model.named_parameters()}
            assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
            assert sum(float(g.abs().sum()) for n, g in grads.items() if "items" in n) > 0
            assert sum(float(g.abs().sum()) for n, g in grads.items() if "items" not in n) > 0
        optimizer.step()
    assert full_ce(model, tokens) < (0.99 if name == "bert4rec" else 0.8) * before


@pytest.mark.parametrize("key, value", [("loss", "softmax"), ("negatives", 0), ("negative_sampling", "zipf")])
def test_bad_sampling_settings_name_their_key(key, value):
    with pytest.raises(GlossError, match=f"model.{key}"):
        make_model("gru4rec", **{"loss": "sampled", key: value})


def test_bce_stays_sasrec_only():
    make_model("sasrec", loss="bce")
    with pytest.raises(GlossError, match="model.loss"):
        make_model("bert4rec", loss="bce")


@pytest.mark.slow
@pytest.mark.parametrize("sparse_items", [False, True])
def test_sasrec_with_sampled_softmax_learns_the_next_item_rule(rule, tmp_path, sparse_items):
    """Through the whole run path (Fitter, Lightning's loop, checkpoints); sparse_items: with the combined optimizer
    (tests/models/test_sparse_items.py)."""
    cfg = compose_model("sasrec", "model.loss=sampled", "model.negatives=8", "model.negative_sampling=popularity",
                        f"model.sparse_items={str(sparse_items).lower()}",
                        "model.hidden=32", "model.dropout=0.1", "model.max_len=10", "datamodule.batch_size=32",
                        "model.lr=5e-3", "trainer.max_epochs=10", "callbacks.early_stopping.patience=50")
    model = fit_model(cfg, rule, tmp_path)
    assert model.item_table().sparse == sparse_items
    assert recall_at_5(model, rule) >= 0.95
