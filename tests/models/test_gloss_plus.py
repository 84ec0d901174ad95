"""GLoSS+: the held-out cut hides every label from the sources, the ranker learns which source to trust, and a run
(sources trained through the run's Trainer) writes its ablation before metrics.json."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest

from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.eval import evaluate_ranking
from gloss.models.base import Ranking, Recommender
from gloss.models.gloss_plus import GlossPlus
from tests.conftest import TINY, run_cli
from tests.models.conftest import rule_data
from tests.models.factory import make_model, settings

COOC, POPULARITY = functools.partial(make_model, "cooc"), functools.partial(make_model, "popularity")


def gloss_plus(sources: list[str], parts: dict[str, Callable[[], Recommender]], ranker: dict | None = None,
               **overrides) -> GlossPlus:
    """conf/model/gloss_plus.yaml's GLoSS+ over `parts` (source name -> a new unfit source), without text features;
    `ranker` changes some of its LightGBM settings."""
    ranker = {**settings("model", "gloss_plus")["ranker"], **(ranker or {})}
    return make_model("gloss_plus", sources=sources, parts=parts, text_encoder=None, ranker=ranker, **overrides)


class CountingFitter:
    """Fits every part with its own fit() (heuristics and the Spy below), as the run's Fitter does for heuristics."""

    def fit_part(self, part: Recommender, data: GlossData, name: str) -> None:
        part.fit(data)


def fit(model: GlossPlus, data: GlossData) -> GlossPlus:
    model.fit_parts(data, CountingFitter())
    return model


def test_held_out_split_is_each_users_training_part_minus_its_last_item():
    data = rule_data(n_users=200, length=6)
    split, held = data.split, data.held_out().split
    train = split.train_sequences()
    test, val = split.test_examples(), split.val_examples()
    for u in range(len(split.sequences)):
        assert np.array_equal(held.sequences[u], train[u])
        # nothing the held-out split trains on reaches the ranker's label, the validation or the test target
        assert len(held.train_sequences()[u]) == len(train[u]) - (2 if u in held.val_users else 1)
    labels = held.test_examples()
    assert np.array_equal(held.targets(labels), np.array([t[-1] for t in train]))
    assert (labels[:, 1] < test[:, 1]).all()
    label_cut = dict(zip(labels[:, 0].tolist(), labels[:, 1].tolist()))
    assert all(label_cut[u] < c for u, c in val)  # a validation user's label is the item before its val target
    assert set(held.val_users.tolist()) <= set(split.val_users.tolist())


class Spy(Recommender):
    """Remembers the sequences it was fit on; recommends nothing useful (item 0 first)."""

    fits: list[list[np.ndarray]] = []

    def fit(self, data: GlossData) -> None:
        self.seen = data.split.train_sequences()
        Spy.fits.append(self.seen)

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        items = np.tile(np.arange(k), (len(histories), 1))
        return Ranking(items, -np.tile(np.arange(k, dtype=np.float32), (len(histories), 1)))


def test_the_ranker_learns_on_labels_no_source_was_fit_on_and_test_uses_the_refit():
    data = rule_data(n_users=200, length=6)
    Spy.fits = []
    model = fit(gloss_plus(["spy", "cooc"], {"spy": Spy, "cooc": COOC}, depth=10, early_stopping_rounds=0,
                           ranker={"n_estimators": 20}), data)
    held_fit, full_fit = Spy.fits
    train = data.split.train_sequences()
    # the held-out fit never holds a user's last training item (the ranker's label) ...
    assert all(len(h) < len(t) and np.array_equal(h, t[: len(h)]) for h, t in zip(held_fit, train))
    assert [len(h) for h in model.ranker_histories] == [len(t) - 1 for t in train if len(t) >= 2]
    # ... and validation/test rank with the sources refit on all training data
    assert all(np.array_equal(f, t) for f, t in zip(full_fit, train))
    assert model.parts["spy"].seen is full_fit and model.held_out_parts["spy"].seen is held_fit


def test_the_ranker_learns_which_source_to_trust():
    data = rule_data(n_items=30, n_users=300, length=8)
    test = data.split.test_examples()
    histories, targets = data.split.histories(test), data.split.targets(test)
    segments = np.array(["all"] * len(test))
    model = fit(gloss_plus(["popularity", "cooc"], {"popularity": POPULARITY, "cooc": COOC}, depth=10,
                           ranker={"n_estimators": 50, "min_child_samples": 5}), data)
    ranked = evaluate_ranking(model.recommend(histories, 10).items, targets, segments).overall
    popularity = POPULARITY()
    popularity.fit(data)
    alone = evaluate_ranking(popularity.recommend(histories, 10).items, targets, segments).overall
    assert alone["recall@5"] < 0.4 and ranked["recall@5"] > 0.95  # the rule is i -> i+1: cooc's top item


def test_unknown_source_or_ablation_is_refused():
    with pytest.raises(GlossError, match="model.sources"):
        gloss_plus(["cooc", "nope"], {"cooc": COOC})
    with pytest.raises(GlossError, match="model.ablation"):
        gloss_plus(["cooc"], {"cooc": COOC}, ablation=["popularity"])


@pytest.mark.slow
def test_gloss_plus_run_trains_its_sources_and_writes_the_ablation(tiny_root: Path, tmp_path: Path):
    args = [*TINY, "model=gloss_plus", "retriever=bm25", "model.sources=[sasrec,cooc,lis]",
            "+model.parts.sasrec.hidden=16", "trainer.max_epochs=1", "eval.val=true",
            "model.ablation=[sasrec]", "model.ranker.n_estimators=20", "model.early_stopping_rounds=0"]
    proc = run_cli("run.py", [*args, f"hydra.run.dir={tmp_path / 'run'}"], tiny_root, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "run"
    for stage in ("held_out", "full"):
        assert (out / "parts" / stage / "sasrec" / "model.ckpt").is_file()  # trained by the run's Trainer
    ablation = json.loads((out / "ablation.json").read_text())
    assert set(ablation) == {"(full model)", "without sasrec"} and set(ablation["without sasrec"]) == {"val", "test"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert ablation["(full model)"]["test"]["overall"] == metrics["overall"] and metrics["model"] == "gloss_plus"
    assert (out / "metrics.json").stat().st_mtime_ns >= (out / "ablation.json").stat().st_mtime_ns
    bad = run_cli("run.py", [*TINY, "model=gloss_plus", "model.sources=[cooc,nope]", f"hydra.run.dir={tmp_path / 'bad' / 'run'}"],
                  tiny_root, tmp_path / "bad" / "cache")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "model.sources" in bad.stderr


@pytest.mark.slow
def test_the_generator_is_a_source_trained_with_its_own_recipe_on_the_held_out_cut(tiny_root: Path, tmp_path: Path):
    """model.sources=[gloss_scratch, ...]: the generator trains in parts/<stage>/gloss_scratch with the prompt DataModule
    and its own recipe's epochs (model.parts.gloss_scratch.recipe), not the ID models' recipe."""
    gen = "+model.parts.gloss_scratch"
    args = [*TINY, "model=gloss_plus", "retriever=bm25", "model.sources=[gloss_scratch,cooc]",
            "model.refit=false", f"{gen}.backbone.hidden_size=32", f"{gen}.backbone.vocab_size=300",
            f"{gen}.generation.batch_size=16", f"{gen}.recipe.trainer.max_epochs=2",
            f"{gen}.recipe.callbacks.ranking_eval.max_users=20", "model.ablation=[gloss_scratch]",
            "model.ranker.n_estimators=20", "model.early_stopping_rounds=0"]
    proc = run_cli("run.py", [*args, f"hydra.run.dir={tmp_path / 'run'}"], tiny_root, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "run"
    part = out / "parts" / "held_out" / "gloss_scratch"
    assert (part / "generator" / "config.json").is_file() and not (out / "parts" / "full").exists()  # refit=false
    log = (out / "run.log").read_text()
    assert "epoch 1:" in log and "epoch 2:" not in log  # the source's 2 epochs (0, 1), not the ID recipe's 200
    assert "gloss_scratch_rank" in log  # the ranker's features include the generator's
    ablation = json.loads((out / "ablation.json").read_text())
    assert set(ablation) == {"(full model)", "without gloss_scratch"}
