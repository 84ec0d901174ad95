"""model.sparse_items (id_base.SparseDenseAdam): at large catalogs the item table gets a sparse gradient and a lazy
Adam update (only the rows a batch touched), the rest of the network AdamW; one optimizer for Lightning."""
from __future__ import annotations

import io

import pytest
import torch

from gloss.data.padding import left_pad_item_ids
from gloss.errors import GlossError
from gloss.models.id_base import SparseDenseAdam
from tests.models.factory import make_model
from tests.models.test_sampled_softmax import MODELS, full_ce


def sparse_model(name: str, rule, **overrides):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    settings = {"loss": "sampled", "negatives": 8, "sparse_items": True, **overrides}
    model = make_model(name, max_len=8, hidden=16, **settings)
    model.build_for(rule, seed=0)
    return model.train()


@pytest.mark.parametrize("name", MODELS)
def test_the_item_gradient_is_sparse_and_only_touched_rows_move(name, rule):
    model = sparse_model(name, rule)
    table = model.item_table().weight
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, SparseDenseAdam)
    tokens = left_pad_item_ids(rule.split.train_sequences()[:4], 9)
    before = table.detach().clone()
    loss = model.training_loss(tokens)
    optimizer.zero_grad()
    loss.backward()
    assert table.grad.is_sparse
    touched = set(table.grad.coalesce().indices()[0].tolist())
    assert 0 < len(touched) < table.shape[0]
    dense = [p for p in model.parameters() if p is not table]
    assert all(p.grad is None or not p.grad.is_sparse for p in dense)
    optimizer.step()
    moved = set(torch.nonzero((table.detach() != before).any(dim=1)).flatten().tolist())
    assert moved and moved <= touched


@pytest.mark.parametrize("name", MODELS)
def test_sparse_items_training_lowers_the_full_ce(name, rule):
    """40 steps of the combined optimizer on one batch: the full-catalog CE falls as with dense AdamW
    (tests/models/test_sampled_softmax.py's bar)."""
    model = sparse_model(name, rule, lr=2e-2)
    tokens = left_pad_item_ids(rule.split.train_sequences()[:64], 9)
    before = full_ce(model, tokens)
    optimizer = model.configure_optimizers()
    for _ in range(40):
        loss = model.training_loss(tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert full_ce(model, tokens) < (0.99 if name == "bert4rec" else 0.8) * before


def test_the_combined_optimizer_state_round_trips(rule):
    """state_dict / load_state_dict carry both parts: a copy resumed from it takes the same next step."""
    a, b = sparse_model("sasrec", rule), sparse_model("sasrec", rule)
    tokens = left_pad_item_ids(rule.split.train_sequences()[:16], 9)
    opt_a = a.configure_optimizers()

    def step(model, optimizer, seed):
        torch.manual_seed(seed)
        optimizer.zero_grad()
        model.training_loss(tokens).backward()
        optimizer.step()

    for seed in range(3):
        step(a, opt_a, seed)
    saved = io.BytesIO()  # through a file, as a checkpoint is: no tensor shared between the two
    torch.save({"model": a.state_dict(), "optimizer": opt_a.state_dict()}, saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    b.load_state_dict(state["model"])
    opt_b = b.configure_optimizers()
    opt_b.load_state_dict(state["optimizer"])
    step(a, opt_a, 10)
    step(b, opt_b, 10)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)
    assert {g["lr"] for g in opt_a.param_groups} == {a.lr}


@pytest.mark.parametrize("overrides, key", [({"loss": "ce"}, "model.sparse_items"),
                                            ({"loss": "sampled", "weight_decay": 0.01}, "model.weight_decay")])
def test_sparse_items_with_a_dense_loss_or_weight_decay_names_the_key(overrides, key):
    with pytest.raises(GlossError, match=key):
        make_model("sasrec", sparse_items=True, **overrides)
