"""Shared checks for the ID-based sequential models (imported by test_sasrec/test_bert4rec/test_gru4rec)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from gloss.data import GlossData
from gloss.eval import evaluate_ranking
from gloss.models.base import build_model
from gloss.models.id_base import IDSequentialRecommender
from gloss.training import Fitter

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def compose_model(model: str, *overrides: str):
    """The model's real Hydra config (conf/model/<model>.yaml + its recipe: DataModule, CPU trainer, callbacks), seed 0,
    with `overrides`."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=[f"model={model}", "trainer.enable_progress_bar=false", "seed=0", *overrides])


def fit_model(cfg, data: GlossData, run_dir: Path, ckpt_path: str | None = None) -> IDSequentialRecommender:
    """Train as run.py does (gloss.training.Fitter: the model's recipe under the run's Trainer, callbacks and
    DataModule values)."""
    torch.set_num_threads(1)
    model = build_model(cfg.model)
    cfg.ckpt_path = ckpt_path
    Fitter(cfg, run_dir).fit(model, data)
    return model


def built(model: IDSequentialRecommender, n_items: int = 20, seed: int = 0) -> IDSequentialRecommender:
    """An untrained network in eval mode (dropout off) for structural checks."""
    torch.manual_seed(seed)
    model.n_items = n_items
    model.build(n_items)
    return model.eval()


def random_history(n_items: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(1, n_items + 1, (1, length)))


def assert_padding_invariant(model: IDSequentialRecommender) -> None:
    """Left-padded to max_len vs unpadded: the next-item scores are the same."""
    history = random_history(model.n_items, 7)
    padded = torch.cat([torch.zeros(1, model.max_len - 7, dtype=torch.long), history], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model.next_item_logits(padded), model.next_item_logits(history), atol=1e-5, rtol=1e-5)


def assert_scores_catalog(model: IDSequentialRecommender) -> None:
    """One finite score per catalog item; the padding id is not a candidate."""
    histories = [np.array([0, 3, 5]), np.arange(model.n_items), np.array([model.n_items - 1])]
    scores = model.score(histories)
    assert scores.shape == (3, model.n_items)
    assert np.isfinite(scores).all()


def recall_at_5(model: IDSequentialRecommender, data: GlossData) -> float:
    examples = data.split.examples("test")
    ranking = model.recommend(data.split.histories(examples), 5)
    return evaluate_ranking(ranking.items, data.split.targets(examples), data.segments()[examples[:, 0]]).overall["recall@5"]


def assert_causal(model: IDSequentialRecommender) -> None:
    """Changing items 6.. of a 10-item history changes the encoder's states there and nowhere before."""
    ids = random_history(model.n_items, 10)
    perturbed = ids.clone()
    perturbed[0, 6:] = torch.tensor([1, 2, 3, 4])
    with torch.no_grad():
        before, after = model.encoder(ids), model.encoder(perturbed)
    torch.testing.assert_close(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])  # the perturbation is visible where it should be
