"""Top-k recommendations for a history given as ASINs (or titles), from a finished run folder (predict.py)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.experiment import check_item_map, load_run_config, prepare_model

log = logging.getLogger("gloss.predict")


def history_indices(entries: list[str], data: GlossData, titles: bool, retriever_cfg: DictConfig | None) -> np.ndarray:
    """Catalog indices of `entries` (oldest first): ASINs; with `titles`, other entries are titles mapped to their
    nearest catalog item by the run's retriever."""
    index = {asin: i for i, asin in enumerate(data.catalog.item_ids)}
    unknown = [e for e in entries if e not in index]
    if unknown and not titles:
        raise GlossError(f"history: {len(unknown)} unknown ASIN(s) in dataset {data.name}: {unknown[:5]} "
                         "(titles=true maps titles to their nearest catalog item)")
    if unknown:
        if retriever_cfg is None:
            raise GlossError("titles=true: the run's config has no retriever to map titles with")
        retriever = instantiate(retriever_cfg)
        retriever.index(data.catalog.texts)
        hits = retriever.search([f"Title: {t}" for t in unknown], 1)[0][:, 0]
        for title, item in zip(unknown, hits):
            log.info("history: %r -> %s %r", title, data.catalog.item_ids[item], data.catalog.titles[item])
            index[title] = int(item)
    return np.array([index[e] for e in entries], dtype=np.int64)


def predict(cfg: DictConfig) -> list[dict]:
    run_dir = Path(cfg.run_dir).expanduser()
    if not isinstance(cfg.history, (list, ListConfig)) or not len(cfg.history):
        raise GlossError(f"history={cfg.history!r}: give a non-empty list of ASINs, e.g. history='[B0001,B0002]'")
    if not isinstance(cfg.k, int) or cfg.k < 1:
        raise GlossError(f"k={cfg.k!r}: must be a positive integer")
    saved, _ = load_run_config(run_dir)
    saved = OmegaConf.merge(saved, {"trainer": cfg.trainer, "logger": None})
    data: GlossData = instantiate(saved.dataset)
    check_item_map(run_dir, data)
    history = history_indices([str(e) for e in cfg.history], data, cfg.titles, saved.get("retriever"))
    model = instantiate(saved.model)
    prepare_model(saved, model, data, run_dir, [], saved_run=run_dir)
    ranking = model.recommend([history], cfg.k)
    return [{"asin": data.catalog.item_ids[i], "title": data.catalog.titles[i], "score": float(s)}
            for i, s in zip(ranking.items[0], ranking.scores[0]) if i >= 0]
