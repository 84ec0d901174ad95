"""GLoSS+: candidates from several gloss recommenders, re-ranked by a learned LambdaRank model over their union.

Stage 1: each source in `sources` (any gloss Recommender: SASRec/BSARec, co-occurrence, Last-Item-Search, popularity,
...) returns its top `depth` items per user. Stage 2: a LightGBM LambdaRank ranker scores every candidate of the union
from features of all sources (each source's rank, score and gap to its top score; how many sources found the item),
the item (training popularity), the user (history length) and the text (MiniLM cosine of the item's title to the last
history item's and to the mean of the last three).

No leakage: the ranker learns on labels no source has seen. The sources are first fit on `GlossData.held_out()` (every
user's training part minus its last training item), the ranker is trained to find that held-out item for all users,
then (refit=true) the sources are refit on the full training data and the ranker ranks their validation/test
candidates. No validation or test target is ever a feature or a label.

Deterministic: the ranker's tree count is chosen once by `ranker_folds`-fold cross-validation over the ranker-training
users (fixed folds; early stopping on the folds' mean NDCG@10, never the validation users), then one ranker is fit on
all of them with exactly that many trees (deterministic LightGBM, fixed seed and threads).

Never below its best source on validation (`fallback`): after fitting, GLoSS+ and each source rank the validation
users; when no ranker beats the best source's NDCG@5 there, that source's own ranking is served (logged).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.eval.metrics import per_user_metrics, target_ranks
from gloss.models.base import CompositeRecommender, PartFitter, Ranking, Recommender, histories_digest, tie_rank
from gloss.progress import Progress

log = logging.getLogger(__name__)

@dataclass
class Candidates:
    """The union of the sources' lists, one row per (user, item), grouped by user in order."""

    users: np.ndarray  # [m] row index of the history each candidate belongs to
    items: np.ndarray  # [m] catalog index
    features: np.ndarray  # [m, n_features] float32, NaN where a source did not return the item


class GlossPlus(CompositeRecommender):
    name = "gloss_plus"
    uses_retriever = True  # LIS candidates and the text features come from the configured retriever

    def __init__(
        self,
        sources: Sequence[str],
        parts: Mapping[str, Callable[[], Recommender]],  # source name -> a new unfit source (gloss.config.compose_parts)
        depth: int,
        exclude_seen: bool,
        refit: bool,
        text_encoder,
        ranker: Mapping,
        early_stopping_rounds: int,
        ranker_folds: int,
        fallback: bool,
        seed: int,
        ablation: Sequence[str],
    ):
        unknown = [s for s in sources if s not in parts]
        if not sources or unknown:
            raise GlossError(f"model.sources={list(sources)}: each must be a model config (model.parts: "
                             f"{', '.join(parts)}){'; missing: ' + ', '.join(unknown) if unknown else ''}")
        if depth < 10:
            raise GlossError(f"model.depth={depth}: must be >= 10 (candidates per source)")
        self.sources = list(sources)
        self.part_factories = dict(parts)
        self.depth, self.exclude_seen, self.refit = depth, exclude_seen, refit
        self.text_encoder = text_encoder
        self.ranker_params = dict(ranker)
        self.early_stopping_rounds, self.ranker_folds, self.seed = early_stopping_rounds, ranker_folds, seed
        self.fallback = fallback
        unknown = [a for a in ablation if a not in (*self.sources, "text")]
        if unknown:
            raise GlossError(f"model.ablation={list(ablation)}: each must be a source in model.sources or 'text' "
                             f"(unknown: {', '.join(unknown)})")
        self.ablation = list(ablation)
        self.list_memo: dict[str, dict[str, Ranking]] = {}  # histories' digest -> source lists (shared by variants)
        self.parts: dict[str, Recommender] = {}  # the sources that rank validation/test users
        self.held_out_parts: dict[str, Recommender] = {}  # the sources fit without the ranker's labels
        self.ranker = None
        self.item_embeddings: np.ndarray | None = None
        self.serving: str | None = None  # a source whose own ranking is served instead of the ranker's (fallback)
        self.val_users: tuple[list[np.ndarray], np.ndarray] = ([], np.zeros(0, dtype=np.int64))  # histories, targets

    # --- fitting ---------------------------------------------------------------------------------------
    def fit_parts(self, data: GlossData, fitter: PartFitter) -> None:
        self.item_embeddings = self.embed_catalog(data)
        held = data.held_out()
        self.held_out_parts = self.fit_sources(held, fitter, "held_out")
        self.held_out_popularity = held.training_counts()
        examples = held.split.test_examples()
        examples = examples[examples[:, 1] >= 1]  # a non-empty history to rank from
        self.ranker_histories, self.ranker_targets = held.split.histories(examples), held.split.targets(examples)
        log.info("ranker training examples: %d users, label = each user's last training item (held out from the "
                 "sources)", len(examples))
        self.ranker_lists = self.source_lists(self.held_out_parts, self.ranker_histories)
        self.train_ranker()
        self.parts = self.fit_sources(data, fitter, "full") if self.refit else self.held_out_parts
        self.popularity = data.training_counts()
        examples = data.split.val_examples()
        self.val_users = (data.split.histories(examples), data.split.targets(examples))
        self.choose_serving()

    def without(self, removed: Sequence[str]) -> "GlossPlus":
        """This fitted GLoSS+ with the `removed` sources' candidates and features taken out and its ranker retrained
        (the sources are not refit): one row of model.ablation."""
        ablated = copy.copy(self)
        ablated.sources = [s for s in self.sources if s not in removed]
        if "text" in removed:
            ablated.item_embeddings = None
        if not ablated.sources:
            raise GlossError(f"removing {list(removed)} leaves GLoSS+ without sources")
        ablated.train_ranker()
        ablated.choose_serving()
        return ablated

    def variants(self) -> dict[str, Recommender]:
        """model.ablation: one variant per entry, that source (or 'text': the text-similarity features) removed."""
        return {f"without {name}": self.without([name]) for name in self.ablation}

    def fit_sources(self, data: GlossData, fitter: PartFitter, stage: str) -> dict[str, Recommender]:
        parts = {}
        for name in self.sources:
            part = self.part_factories[name]()  # a new instance per stage: the held-out fit never reaches test
            log.info("GLoSS+ source %s: fitting on the %s data", name, stage)
            fitter.fit_part(part, data, f"{stage}/{name}")
            parts[name] = part
        return parts

    def embed_catalog(self, data: GlossData) -> np.ndarray | None:
        if self.text_encoder is None or not hasattr(self.text_encoder, "embed"):
            log.info("GLoSS+: no dense text encoder (model.text_encoder); text-similarity features are off")
            return None
        # L2-normalised (DenseRetriever), so dot products below are cosines
        return self.text_encoder.embed(data.catalog.texts, getattr(self.text_encoder, "passage_prefix", ""), "catalog")

    def train_ranker(self) -> None:
        """The LambdaRank model on the held-out examples' candidates (all users; label: the held-out item), with the
        tree count `tree_count` chooses."""
        import lightgbm as lgb

        cands = self.candidates(self.ranker_histories, self.held_out_popularity, self.ranker_lists)
        targets = self.ranker_targets
        labels = (cands.items == targets[cands.users]).astype(np.int32)
        found = np.zeros(len(targets), dtype=bool)
        found[cands.users[labels == 1]] = True
        log.info("stage 1 recall (label among the %.1f candidates per user on average): %.4f",
                 len(cands.users) / max(len(targets), 1), found.mean())
        keep = found[cands.users]  # users whose label no source found carry no ranking signal
        features, labels, groups = cands.features[keep], labels[keep], group_sizes(cands.users[keep])
        lgb.register_logger(log)
        params = {**self.ranker_params, "n_estimators": self.tree_count(features, labels, groups)}
        self.ranker = lgb.LGBMRanker(**params, **self.lightgbm_fixed())
        log.info("training the LambdaRank ranker on %d candidates of %d users, %d trees", len(labels), len(groups),
                 params["n_estimators"])
        self.ranker.fit(features, labels, group=groups)
        gain = self.ranker.booster_.feature_importance("gain")
        ranked = sorted(zip(self.feature_names(), gain / max(gain.sum(), 1e-12)), key=lambda x: -x[1])
        log.info("ranker: %d trees; feature gain share: %s", self.ranker.booster_.num_trees(),
                 ", ".join(f"{n} {g:.3f}" for n, g in ranked))

    def lightgbm_fixed(self) -> dict:
        """What makes two fits on the same data the same model: LightGBM's deterministic mode, row-wise histograms
        and the seed (the thread count is model.ranker.n_jobs)."""
        return {"random_state": self.seed, "deterministic": True, "force_row_wise": True, "verbose": -1}

    def tree_count(self, features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> int:
        """The ranker's tree count: early stopping on the mean NDCG@10 of `ranker_folds` fixed folds of the
        ranker-training users (lightgbm.cv; GroupKFold, no shuffling), or `ranker.n_estimators` when early stopping
        is off (early_stopping_rounds=0, ranker_folds < 2) or there are fewer users than folds."""
        import lightgbm as lgb

        most = int(self.ranker_params["n_estimators"])
        if not self.early_stopping_rounds or self.ranker_folds < 2 or len(groups) < self.ranker_folds:
            log.info("ranker: %d trees (model.ranker.n_estimators; no cross-validation: early_stopping_rounds=%s, "
                     "ranker_folds=%s, %d users)", most, self.early_stopping_rounds, self.ranker_folds, len(groups))
            return most
        params = {key: value for key, value in self.ranker_params.items() if key != "n_estimators"}
        params.update(self.lightgbm_fixed(), metric="ndcg", eval_at=[10])
        curves = lgb.cv(params, lgb.Dataset(features, labels, group=groups), num_boost_round=most,
                        nfold=self.ranker_folds, stratified=False, shuffle=False,
                        callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])
        mean = curves["valid ndcg@10-mean"]
        log.info("ranker: %d trees chosen by %d-fold cross-validation over %d ranker-training users (mean NDCG@10 "
                 "%.4f +- %.4f)", len(mean), self.ranker_folds, len(groups), mean[-1], curves["valid ndcg@10-stdv"][-1])
        return len(mean)

    def choose_serving(self) -> None:
        """model.fallback: GLoSS+ and each source rank the validation users; when the ranker's NDCG@5 does not beat
        the best source's, that source serves every ranking (GLoSS+ never ranks below its best source there)."""
        self.serving = None
        histories, targets = self.val_users
        if not self.fallback or not len(targets):
            if self.fallback:
                log.info("GLoSS+ fallback: no validation users, the ranker serves")
            return
        ndcg = {"ranker": validation_ndcg(self.recommend(histories, 10).items, targets)}
        lists = self.list_memo[histories_digest(histories)]  # the sources' lists the ranker just ranked
        ndcg.update({name: validation_ndcg(lists[name].items[:, :10], targets) for name in self.sources})
        best = max(self.sources, key=lambda name: ndcg[name])
        summary = ", ".join(f"{name} {value:.4f}" for name, value in ndcg.items())
        if ndcg["ranker"] <= ndcg[best]:
            self.serving = best
            log.warning("GLoSS+ fallback: the ranker does not beat its best source on the %d validation users (NDCG@5: "
                        "%s); %s's own ranking is served", len(targets), summary, best)
        else:
            log.info("GLoSS+ fallback not needed: the ranker beats every source on the %d validation users (NDCG@5: "
                     "%s)", len(targets), summary)

    # --- features --------------------------------------------------------------------------------------
    def feature_names(self) -> list[str]:
        per_source = [f"{s}_{f}" for s in self.sources for f in ("rank", "score", "gap")]
        text = ["text_sim_last", "text_sim_recent"] if self.item_embeddings is not None else []
        return per_source + ["n_sources", "log_popularity", "log_history_length"] + text

    def source_lists(self, parts: Mapping[str, Recommender], histories: Sequence[np.ndarray],
                     names: Sequence[str] | None = None) -> dict[str, Ranking]:
        """Each source's (of `names`, default all) top `depth` items for each history."""
        lists = {}
        for name in self.sources if names is None else names:
            log.info("GLoSS+ source %s: top %d for %d users", name, self.depth, len(histories))
            lists[name] = parts[name].recommend(histories, self.depth)
        return lists

    def candidates(self, histories: Sequence[np.ndarray], popularity: np.ndarray,
                   all_lists: Mapping[str, Ranking]) -> Candidates:
        """The union of the sources' lists (seen items removed with exclude_seen) and the ranker's features."""
        n_items = len(popularity)
        lists = {name: all_lists[name] for name in self.sources}
        rows = np.arange(len(histories), dtype=np.int64)[:, None]
        keys = np.unique(np.concatenate([(rows * n_items + r.items)[r.items >= 0] for r in lists.values()]))
        if self.exclude_seen:
            seen = np.concatenate([u * n_items + np.asarray(h, dtype=np.int64) for u, h in enumerate(histories)] or [[]])
            keys = keys[~np.isin(keys, seen)]
        users, items = keys // n_items, keys % n_items
        features = np.full((len(keys), len(self.feature_names())), np.nan, dtype=np.float32)
        for j, ranking in enumerate(lists.values()):
            source_keys = rows * n_items + ranking.items
            pos = np.searchsorted(keys, source_keys).clip(max=max(len(keys) - 1, 0))
            hit = (ranking.items >= 0) & (keys[pos] == source_keys) if len(keys) else np.zeros_like(pos, dtype=bool)
            depth = ranking.items.shape[1]
            features[pos[hit], 3 * j] = np.broadcast_to(np.arange(1, depth + 1), ranking.items.shape)[hit]
            features[pos[hit], 3 * j + 1] = ranking.scores[hit]
            features[pos[hit], 3 * j + 2] = (ranking.scores[:, :1] - ranking.scores)[hit]
        c = 3 * len(lists)
        features[:, c] = (~np.isnan(features[:, 0:c:3])).sum(axis=1)
        features[:, c + 1] = np.log1p(popularity[items])
        lengths = np.array([len(h) for h in histories])
        features[:, c + 2] = np.log(lengths[users])
        if self.item_embeddings is not None:
            emb = self.item_embeddings
            last = np.array([h[-1] for h in histories])
            recent = np.stack([emb[h[-3:]].mean(axis=0) for h in histories])
            recent /= np.maximum(np.linalg.norm(recent, axis=1, keepdims=True), 1e-12)
            for start in range(0, len(keys), 1_000_000):  # chunks: [m, dim] gathers would be GBs on sports
                sl = slice(start, start + 1_000_000)
                features[sl, c + 3] = np.einsum("ij,ij->i", emb[items[sl]], emb[last[users[sl]]])
                features[sl, c + 4] = np.einsum("ij,ij->i", emb[items[sl]], recent[users[sl]])
        return Candidates(users, items, features)

    # --- ranking ---------------------------------------------------------------------------------------
    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        if self.ranker is None:
            raise GlossError("gloss_plus: not fitted (run it with run.py)")
        if self.serving is not None:
            return self.parts[self.serving].recommend(histories, k)
        digest = histories_digest(histories)
        lists = self.list_memo.setdefault(digest, {})  # variants (ablation) rank the same users: each source once
        lists.update(self.source_lists(self.parts, histories, [s for s in self.sources if s not in lists]))
        cands = self.candidates(histories, self.popularity, self.list_memo[digest])
        with Progress(len(cands.users), "rank candidates") as progress:
            scores = self.ranker.predict(cands.features)
            progress.update(len(cands.users))
        order = np.lexsort((tie_rank(cands.items), -scores, cands.users))  # by user, best first, ties by the rule
        users, items, scores = cands.users[order], cands.items[order], scores[order]
        starts = np.searchsorted(users, np.arange(len(histories)))
        position = np.arange(len(users)) - starts[users]
        top = position < k
        out_items = np.full((len(histories), k), -1, dtype=np.int64)
        out_scores = np.zeros((len(histories), k), dtype=np.float32)
        out_items[users[top], position[top]] = items[top]
        out_scores[users[top], position[top]] = scores[top]
        return Ranking(out_items, out_scores)


def group_sizes(users: np.ndarray) -> np.ndarray:
    """LightGBM's query groups: the run lengths of the (sorted) user column."""
    _, counts = np.unique(users, return_counts=True)
    return counts


def validation_ndcg(items: np.ndarray, targets: np.ndarray) -> float:
    """Mean NDCG@5 of ranked lists (the run's monitor metric)."""
    return float(per_user_metrics(target_ranks(items, targets), (5,))["ndcg@5"].mean())
