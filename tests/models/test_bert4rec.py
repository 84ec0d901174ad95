import torch

from gloss.models.bert4rec import mask_items
from tests.models.factory import make_model
from tests.models.id_helpers import assert_padding_invariant, assert_scores_catalog, built, compose_model, fit_model, recall_at_5


def test_masking_hits_only_real_items_and_at_least_one_per_row():
    torch.manual_seed(0)
    ids = torch.tensor([[0, 0, 0, 4, 5], [0, 1, 2, 3, 4], [7, 8, 9, 1, 2]])
    for prob in (0.0, 0.5):
        masked_ids, masked = mask_items(ids, prob, mask_id=99)
        assert not masked[ids == 0].any()  # padding is never a target
        assert masked.any(dim=1).all()
        assert (masked_ids[masked] == 99).all() and torch.equal(masked_ids[~masked], ids[~masked])
    _, masked = mask_items(ids.repeat(200, 1), 0.3, mask_id=99)
    rate = masked[ids.repeat(200, 1) != 0].float().mean().item()
    assert 0.25 < rate < 0.4


def test_bidirectional_padding_and_catalog_scores():
    model = built(make_model("bert4rec", max_len=12, hidden=16))
    assert_padding_invariant(model)
    assert_scores_catalog(model)
    ids = torch.tensor([[0, 0, 3, 4, 5, 6]])
    changed = ids.clone()
    changed[0, -1] = 9
    with torch.no_grad():  # bidirectional: a later item does change an earlier position
        assert not torch.allclose(model.encoder(ids)[:, 2], model.encoder(changed)[:, 2])


def test_learns_deterministic_next_item_rule(rule, tmp_path):
    cfg = compose_model(
        "bert4rec", "model.hidden=32", "model.dropout=0.1", "model.max_len=10", "datamodule.batch_size=32",
        "model.lr=5e-3", "trainer.max_epochs=40", "callbacks.early_stopping.patience=50",
    )
    assert recall_at_5(fit_model(cfg, rule, tmp_path), rule) >= 0.95
