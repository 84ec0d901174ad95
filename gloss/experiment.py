"""One experiment: instantiate data, model (and its retriever), fit, rank the test users, evaluate, write results."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gloss.data import GlossData
from gloss.eval import evaluate_ranking, metrics_summary, results_table, write_run_outputs
from gloss.loggers import instantiate_loggers, log_results
from gloss.models import Recommender, RunContext

log = logging.getLogger("gloss")


def config_choice(group: str, default: str) -> str:
    try:
        return HydraConfig.get().runtime.choices.get(group) or default
    except ValueError:  # not inside a Hydra run (e.g. called from a test with compose())
        return default


def evaluate_split(model: Recommender, data: GlossData, split: str, k: int) -> tuple:
    examples = data.split.examples(split)
    histories = data.split.histories(examples)
    targets = data.split.targets(examples)
    t0 = time.perf_counter()
    ranking = model.recommend(histories, k)
    seconds = time.perf_counter() - t0
    log.info("%s: ranked %d users in %.1fs (%.0f users/s)", split, len(histories), seconds, len(histories) / max(seconds, 1e-9))
    segments = data.segments()[examples[:, 0]]
    return evaluate_ranking(ranking.items, targets, segments), examples, targets, ranking


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict:
    data: GlossData = instantiate(cfg.dataset)
    model: Recommender = instantiate(cfg.model)
    model_name = cfg.get("model_name") or config_choice("model", getattr(model, "name", "model"))
    retriever_name = config_choice("retriever", "none") if model.uses_retriever else "none"
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    log.info("dataset %s: %s", data.name, data.stats())

    run_name = "-".join([data.name, model_name] + ([retriever_name] if retriever_name != "none" else []))
    loggers = instantiate_loggers(cfg.get("logger"), run_dir, run_name)
    ctx = RunContext(
        run_dir=run_dir, trainer=cfg.get("trainer"), loggers=loggers, ckpt_path=cfg.get("ckpt_path"), seed=cfg.seed
    )
    t0 = time.perf_counter()
    model.fit(data, ctx)
    log.info("fit: %.1fs", time.perf_counter() - t0)

    summaries = {}
    for split in ("val", "test") if cfg.eval.get("val", False) else ("test",):  # test last: used below
        ev, examples, targets, ranking = evaluate_split(model, data, split, cfg.eval.k)
        summaries[split] = summary = metrics_summary(data.name, model_name, retriever_name, split, ev)
        user_ids = [data.split.user_ids[u] for u in examples[:, 0]]
        write_run_outputs(run_dir, summary, ev, user_ids, targets, ranking.items, data.catalog.item_ids)
    log_results(loggers, cfg, summaries, run_dir, model, data, examples, ranking.items)
    print(f"\n{model_name} + {retriever_name} on {data.name} (test, {summary['n_users']} users)\n{results_table(summary)}")
    print(f"results: {run_dir}")
    return summary
