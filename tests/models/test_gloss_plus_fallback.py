"""GLoSS+ never ranks below its best source on the validation users (model.fallback), tested where the ranker
cannot learn."""
from __future__ import annotations

import logging

import numpy as np

from gloss.models.gloss_plus import validation_ndcg
from tests.models.conftest import rule_data
from tests.models.test_gloss_plus import COOC, POPULARITY, fit, gloss_plus

NO_SPLITS = {"n_estimators": 5, "min_child_samples": 10**6}  # a leaf needs more rows than exist: constant scores


def test_a_ranker_that_cannot_learn_falls_back_to_the_best_source(caplog):
    data = rule_data(n_users=40, length=6)  # 40 users: 4 validation users
    with caplog.at_level(logging.WARNING, logger="gloss.models.gloss_plus"):
        model = fit(gloss_plus(["popularity", "cooc"], {"popularity": POPULARITY, "cooc": COOC}, depth=10,
                               ranker=NO_SPLITS), data)
    assert model.serving == "cooc"
    assert "GLoSS+ fallback" in caplog.text and "cooc's own ranking is served" in caplog.text
    for split in ("val", "test"):
        histories = data.split.histories(data.split.examples(split))
        expected = model.parts["cooc"].recommend(histories, 20)
        got = model.recommend(histories, 20)
        assert np.array_equal(got.items, expected.items) and np.array_equal(got.scores, expected.scores)


def test_without_fallback_the_unlearned_ranker_serves_and_ranks_worse():
    data = rule_data(n_users=40, length=6)
    model = fit(gloss_plus(["popularity", "cooc"], {"popularity": POPULARITY, "cooc": COOC}, depth=10,
                           ranker=NO_SPLITS, fallback=False), data)
    assert model.serving is None
    examples = data.split.val_examples()
    histories, targets = data.split.histories(examples), data.split.targets(examples)
    cooc = validation_ndcg(model.parts["cooc"].recommend(histories, 10).items, targets)
    assert validation_ndcg(model.recommend(histories, 10).items, targets) < cooc

