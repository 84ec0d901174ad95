from tests.models.factory import make_model
from tests.models.id_helpers import assert_padding_invariant, assert_scores_catalog, built, compose_model, fit_model, recall_at_5


def test_padding_and_catalog_scores():
    model = built(make_model("gru4rec", max_len=12, hidden=16))
    assert_padding_invariant(model)
    assert_scores_catalog(model)


def test_learns_deterministic_next_item_rule(rule, tmp_path):
    cfg = compose_model(
        "gru4rec", "model.hidden=32", "model.dropout=0.1", "model.max_len=10", "datamodule.batch_size=32",
        "model.lr=5e-3", "trainer.max_epochs=8", "callbacks.early_stopping.patience=50",
    )
    assert recall_at_5(fit_model(cfg, rule, tmp_path), rule) >= 0.95
