"""One experiment, as configured: validate -> data -> model -> fit -> rank the evaluated splits -> write results.

`run.py` (a run from config) and `eval.py` (a saved run ranked again, model from gloss.run_folder.load_run) call
`run_experiment`. Under DDP every rank trains; only rank 0 ranks users and writes (the other ranks return None).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gloss import run_folder
from gloss.config import compose_parts
from gloss.data import GlossData
from gloss.errors import RunFolderRefused
from gloss.eval import metrics_summary, per_user_lines, results_table, write_run_outputs
from gloss.eval.sharded import prestart_for
from gloss.eval.splits import evaluate_split, ranking_device, splits_to_rank, write_ablation
from gloss.loggers import instantiate_loggers, log_results
from gloss.models.base import build_model, configure_ranking
from gloss.validation import validate_config

log = logging.getLogger("gloss")


def process_rank() -> int:
    """This process's global rank as the launcher set it (Lightning's DDP re-launch, torchrun, SLURM), before any
    Trainer exists; 0 for a plain run."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key):
            return int(os.environ[key])
    return 0


def config_choice(group: str, default: str) -> str:
    try:
        return HydraConfig.get().runtime.choices.get(group) or default
    except ValueError:  # not inside a Hydra run (e.g. called from a test with compose())
        return default


def run_experiment(cfg: DictConfig, run_dir: Path, saved_run: Path | None = None) -> dict[str, dict] | None:
    """Returns the summaries by split ({"test": ..., ["val": ...]}); None on ranks other than 0. With `saved_run`
    (eval.py) the model is that run folder's, not trained. The config is checked first (gloss.validation); rank 0
    then holds the run folder throughout (run_folder.claimed); the other DDP ranks train in it and write nothing."""
    if saved_run is not None:  # the saved run's config, with this command's trainer and eval settings
        try:
            saved, _ = run_folder.read_config(saved_run)
        except RunFolderRefused:
            run_folder.remove_empty_folders(run_dir, saved_run)
            raise
        cfg = OmegaConf.merge(saved, {"trainer": cfg.trainer, "eval": cfg.eval, "ckpt_path": None, "logger": None,
                                      "optimized_metric": None})
    compose_parts(cfg)
    validate_config(cfg, trains=saved_run is None)
    configure_ranking(cfg.eval.rank_memory_mb)
    if process_rank() != 0:
        return experiment(cfg, run_dir, saved_run)
    with run_folder.claimed(run_dir, cfg.get("ckpt_path") == "last", cfg):
        prestart_for(cfg)  # the ranking engine (eval.engine) starts while data loads and the model fits
        return experiment(cfg, run_dir, saved_run)


def experiment(cfg: DictConfig, run_dir: Path, saved_run: Path | None) -> dict[str, dict] | None:
    resuming = cfg.get("ckpt_path") == "last"
    if cfg.get("ckpt_path") is not None:  # a missing or unreadable checkpoint: before any data is loaded
        from gloss.training import resolve_ckpt_path

        resolve_ckpt_path(cfg.ckpt_path, run_dir)
    choices, training = {}, None
    if saved_run is None:
        data: GlossData = instantiate(cfg.dataset)
        model = build_model(cfg.model)
        if process_rank() == 0:
            run_folder.write_run_record(cfg, run_dir, data, resuming)
    else:
        t0 = time.perf_counter()
        loaded = run_folder.load_run(saved_run, {"trainer": cfg.trainer}, out_dir=run_dir)
        data, model, choices = loaded.data, loaded.model, loaded.choices
        run_folder.write_run_record(cfg, run_dir, data, resuming)
        log.info("model of %s rebuilt in %.1fs", saved_run, time.perf_counter() - t0)
        if (saved_run / "metrics.json").is_file():  # how far that run's training went
            training = json.loads((saved_run / "metrics.json").read_text()).get("training")
    log.info("dataset %s: %s", data.name, data.stats())
    model_name = cfg.get("model_name") or choices.get("model") or config_choice("model", model.name)
    retriever_name = (choices.get("retriever") or config_choice("retriever", "none")) if model.uses_retriever else "none"

    loggers = []
    if saved_run is None:
        from gloss.training import Fitter, training_record

        run_name = "-".join([data.name, model_name] + ([retriever_name] if retriever_name != "none" else []))
        loggers = instantiate_loggers(cfg.get("logger"), run_dir, run_name)
        t0 = time.perf_counter()
        trainer = Fitter(cfg, run_dir, loggers).fit(model, data)
        log.info("fit: %.1fs", time.perf_counter() - t0)
        if trainer is not None and trainer.global_rank != 0:
            return None
        training = training_record(trainer)
    log.info("ranking on %s", ranking_device(model))

    summaries, per_user = {}, {}
    for split in splits_to_rank(cfg):
        ev, examples, targets, ranking = evaluate_split(model, data, split, cfg.eval, cfg.seed)
        summaries[split] = summary = metrics_summary(data.name, model_name, retriever_name, split, ev, training)
        user_ids = [data.split.user_ids[u] for u in examples[:, 0]]
        per_user[split] = per_user_lines(ev, user_ids, targets, ranking.items, data.catalog.item_ids)
    write_ablation(run_dir, model, data, summaries, cfg.eval, cfg.seed)
    write_run_outputs(run_dir, summaries, per_user)
    log_results(loggers, cfg, summaries, run_dir, model, data, examples, ranking.items)
    print(f"\n{model_name} + {retriever_name} on {data.name} (test, {summary['n_users']} users)\n{results_table(summary)}")
    print(f"results: {run_dir}")
    return summaries


def optimized_value(cfg: DictConfig, summaries: dict[str, dict] | None) -> float | None:
    """The value a Hydra sweeper optimizes: `optimized_metric` (val/<metric>) of this run, or None."""
    metric = cfg.get("optimized_metric")
    if metric is None or summaries is None:
        return None
    split, _, name = metric.partition("/")
    return float(summaries[split]["overall"][name])
