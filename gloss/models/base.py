"""The Recommender interface every model implements: histories in, ranked item indices (and scores) out.

Evaluation, sweeps and fusion only ever see this interface.
"""
from __future__ import annotations

import functools
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.progress import Progress

if TYPE_CHECKING:  # importing Lightning costs seconds; heuristic runs skip it
    import lightning as L

    from gloss.training import Fitter


@dataclass
class Ranking:
    items: np.ndarray  # [n, k] item indices, best first, -1 = empty slot
    scores: np.ndarray  # [n, k]


class Recommender(ABC):
    """Histories (arrays of catalog indices, oldest first) in, top-k item indices out."""

    name: str = "recommender"
    uses_retriever: bool = False  # True when results depend on the configured retriever
    exclude_seen: bool = False
    recipe: dict | None = None  # how it trains: its config node's `recipe` (build_model), for gloss.training

    def fit(self, data: GlossData) -> None:
        """Learn from `data.split` training examples (heuristics count; trained models are a TrainableRecommender)."""

    def fit_by(self, fitter: "Fitter", data: GlossData) -> "L.Trainer | None":
        """How a run fits this kind of model (gloss.training.Fitter asks the model): a heuristic counts."""
        self.fit(data)
        return None

    @abstractmethod
    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking: ...

    def examples_for(self, split: str, data: GlossData) -> np.ndarray:
        """The (user, cut) examples to evaluate on `split` (after fit): the split's own, unless the model brings its
        users (e.g. precomputed generations with users=file)."""
        return data.split.examples(split)

    def variants(self) -> dict[str, "Recommender"]:
        """Ablations of this fitted model (label -> recommender), ranked on the same users as the model itself into
        the run's ablation.json / ablation.md; none by default (GLoSS+: model.ablation)."""
        return {}

    def example_columns(self, histories: Sequence[np.ndarray]) -> list[dict[str, str]]:
        """Optional model-specific columns for the examples table logged to W&B (a handful of test users).

        One dict per history, column name -> text; a generator returns e.g. {"generated": "Title: a\\nTitle: b"}.
        The table always shows history, target, top-5 and the target's rank; the default adds nothing.
        """
        return [{} for _ in histories]


class TrainableRecommender(Recommender):
    """A model trained by the run's Lightning Trainer (gloss.training): built for a dataset, trained as
    `lightning_module` on the configured DataModule (`datamodule/`, given `datamodule_inputs()`), and saved into /
    reloaded from its run folder, so eval.py and predict.py need nothing but that folder."""

    def fit(self, data: GlossData) -> None:
        raise TypeError(f"{type(self).__name__} is trained by gloss.training.Fitter, not fit()")

    def fit_by(self, fitter: "Fitter", data: GlossData) -> "L.Trainer":
        """Trained with its recipe under the run's Trainer overrides (or reloaded from a saved run)."""
        return fitter.train(self, data)

    @abstractmethod
    def build_for(self, data: GlossData, seed: int, run_dir: Path | None = None) -> None:
        """Create the network(s) for `data`'s catalog: at random (seeded), or with `run_dir` the weights saved there."""

    @property
    @abstractmethod
    def lightning_module(self) -> "L.LightningModule": ...

    def datamodule_inputs(self) -> dict:
        """Arguments the DataModule needs from the model beyond `data` (e.g. a generator's prompt encoder)."""
        return {}

    @abstractmethod
    def save(self, run_dir: Path) -> None:
        """Write what `build_for(..., run_dir=...)` reads back (weights and the settings ranking depends on)."""


class PartFitter(Protocol):
    def fit_part(self, part: Recommender, data: GlossData, name: str) -> None:
        """Fit `part` on `data` as a run fits a model of its kind, in the folder <run>/parts/<name>."""


class CompositeRecommender(Recommender):
    """A recommender built from other recommenders (GLoSS+), its `parts`: config nodes that build_model turns into
    factories of new, unfit parts. The run fits it through `fit_parts`, which fits each part as a run would (each with
    its own recipe, in its own folder)."""

    def fit(self, data: GlossData) -> None:
        raise TypeError(f"{type(self).__name__} is fit by the run (fit_parts), not fit()")

    def fit_by(self, fitter: "Fitter", data: GlossData) -> None:
        self.fit_parts(data, fitter)
        return None

    @abstractmethod
    def fit_parts(self, data: GlossData, fitter: PartFitter) -> None: ...


def build_model(node: DictConfig | dict) -> Recommender:
    """A model from its config node (conf/model/<name>.yaml as composed). Two keys are not constructor arguments: the
    `recipe` (how it trains) is kept on the model for gloss.training, and a composite's `parts` (model nodes) are
    passed as factories, each call a new unfit part. Interpolations are resolved against the node's root config."""
    from hydra.utils import instantiate

    settings: dict[str, Any] = (OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig)
                                else dict(node))
    recipe = settings.pop("recipe", None)
    extra = {}
    if "parts" in settings:
        extra["parts"] = {name: functools.partial(build_model, part) for name, part in settings.pop("parts").items()}
    model = instantiate(OmegaConf.create(settings), _partial_=True)(**extra)  # objects as they are, not merged into config
    if not isinstance(model, Recommender):
        raise GlossError(f"model._target_={settings.get('_target_')}: not a gloss Recommender")
    model.recipe = recipe
    return model


def histories_digest(histories: Sequence[np.ndarray]) -> str:
    """A key of a set of histories (items and lengths): memos of models whose variants rank the same users."""
    return hashlib.sha256(np.concatenate([np.asarray(h, dtype=np.int64) for h in histories] + [
        np.array([len(h) for h in histories], dtype=np.int64)]).tobytes()).hexdigest()


def top_k_scores(scores: np.ndarray, k: int, histories: Sequence[np.ndarray] | None = None) -> Ranking:
    """Top-k over full-catalog scores [n, n_items]; with `histories`, seen items are excluded."""
    scores = scores.astype(np.float32, copy=True)
    if histories is not None:
        for row, h in enumerate(histories):
            scores[row, h] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    items = np.take_along_axis(part, order, axis=1)
    best = np.take_along_axis(part_scores, order, axis=1)
    items[~np.isfinite(best)] = -1
    return Ranking(items.astype(np.int64), np.where(np.isfinite(best), best, 0).astype(np.float32))


class ScoringRecommender(Recommender):
    """A model that scores the whole catalog for each history; ranking and seen-filtering are shared."""

    batch_size: int = 1024

    @abstractmethod
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[len(histories), n_items] scores, higher is better."""

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        parts = []
        with Progress(len(histories), "rank") as progress:
            for start in range(0, len(histories), self.batch_size):
                batch = histories[start : start + self.batch_size]
                parts.append(top_k_scores(self.score(batch), k, batch if self.exclude_seen else None))
                progress.update(len(batch))
        return Ranking(np.concatenate([p.items for p in parts]), np.concatenate([p.scores for p in parts]))
