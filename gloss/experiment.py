"""One experiment, as configured: data, model, [train: gloss.training], rank the evaluated splits, write results.

`run.py` (a run from config) and `eval.py` (a saved run re-ranked) call this; `predict.py` reuses `load_run`.
Under DDP every rank trains; only rank 0 ranks users and writes (the other ranks return None after training).
"""
from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gloss.callbacks.ranking_eval import sample_examples
from gloss.data import GlossData
from gloss.errors import GlossError
from gloss.eval import evaluate_ranking, metrics_summary, results_table, write_run_outputs
from gloss.loggers import instantiate_loggers, log_results
from gloss.models import Recommender, TrainableRecommender
from gloss.validation import validate_config

log = logging.getLogger("gloss")
ITEMS_FILE = "items.tsv"  # a run folder's item map: catalog index -> ASIN, title


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


def splits_to_rank(cfg: DictConfig) -> list[str]:
    """Test always; validation too with eval.val=true or when optimized_metric (what a sweeper reads) is a val/ metric
    (gloss.validation has checked those keys)."""
    return ["val", "test"] if cfg.eval.get("val", False) or cfg.get("optimized_metric") is not None else ["test"]


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    """Before any work: a finished run is never overwritten; an unfinished one only continues with ckpt_path=last."""
    if (run_dir / "metrics.json").exists():
        raise GlossError(f"{run_dir} holds a finished run (metrics.json); results are never overwritten: use a new folder "
                         "(evaluate it again with: python eval.py run_dir=<run>)")
    if not resuming and ((run_dir / "checkpoints").exists() or (run_dir / "config_resolved.yaml").exists()):
        raise GlossError(f"{run_dir} holds an unfinished run: resume it with ckpt_path=last, or use a new folder")


def write_run_record(cfg: DictConfig, run_dir: Path, data: GlossData) -> None:
    """config_resolved.yaml (kept from the first attempt when resuming: the resume's goes beside it) and items.tsv."""
    target = run_dir / "config_resolved.yaml"
    if target.exists():
        target = run_dir / f"config_resolved.{datetime.now():%Y-%m-%d_%H-%M-%S_%f}.yaml"
    target.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    items = "".join(f"{asin}\t{title}\n" for asin, title in zip(data.catalog.item_ids, data.catalog.titles))
    (run_dir / ITEMS_FILE).write_text(items)


def check_item_map(run_dir: Path, data: GlossData) -> None:
    """A saved run's model is only valid on the catalog it was trained on."""
    path = run_dir / ITEMS_FILE
    if not path.is_file():
        raise GlossError(f"{path}: missing (not a gloss run folder, or one written before items.tsv existed)")
    saved = [line.split("\t", 1)[0] for line in path.read_text().splitlines()]
    if saved != list(data.catalog.item_ids):
        raise GlossError(f"{path}: the run's catalog ({len(saved)} items) differs from dataset {data.name}'s "
                         f"({len(data.catalog)} items): the data changed since the run")


def prepare_model(cfg: DictConfig, model: Recommender, data: GlossData, run_dir: Path, loggers: list,
                  saved_run: Path | None = None):
    """Heuristics: fit (counting; deterministic). Trained models: train (gloss.training), or with `saved_run` rebuild
    from that run folder's weights on the configured Trainer's device. Returns the Trainer (None for heuristics)."""
    if not isinstance(model, TrainableRecommender):
        model.fit(data)
        return None
    from gloss.training import place_for_ranking, train

    if saved_run is None:
        return train(cfg, model, data, run_dir, loggers)
    import lightning as L

    L.seed_everything(cfg.seed, workers=True)
    model.build_for(data, cfg.seed, run_dir=saved_run)
    trainer = instantiate(cfg.trainer, logger=False, default_root_dir=str(run_dir))
    place_for_ranking(model, trainer)
    return trainer


def evaluate_split(model: Recommender, data: GlossData, split: str, k: int, max_users: int | None, seed: int) -> tuple:
    examples = sample_examples(model.examples_for(split, data), max_users, seed)
    histories = data.split.histories(examples)
    targets = data.split.targets(examples)
    log.info("%s: ranking %d users", split, len(histories))
    device = ranking_device(model)
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    ranking = model.recommend(histories, k)
    seconds = time.perf_counter() - t0
    memory = (f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
              if device.startswith("cuda") else "")
    log.info("%s: ranked %d users in %.1fs (%.1f users/s%s)", split, len(histories), seconds,
             len(histories) / max(seconds, 1e-9), memory)
    segments = data.segments()[examples[:, 0]]
    return evaluate_ranking(ranking.items, targets, segments), examples, targets, ranking


def ranking_device(model: Recommender) -> str:
    module = model.lightning_module if isinstance(model, TrainableRecommender) else None
    params = next(module.parameters(), None) if module is not None else None
    return str(params.device) if params is not None else "cpu"


def load_run_config(run_dir: Path) -> tuple[DictConfig, dict]:
    """A run folder's resolved config and its config-group choices (model, retriever, ...: the result labels)."""
    path = Path(run_dir) / "config_resolved.yaml"
    if not path.is_file():
        raise GlossError(f"run_dir={run_dir}: not a gloss run folder (no config_resolved.yaml)")
    hydra_file = Path(run_dir) / ".hydra" / "hydra.yaml"
    choices = dict(OmegaConf.load(hydra_file).hydra.runtime.choices) if hydra_file.is_file() else {}
    return OmegaConf.load(path), choices


def run_experiment(cfg: DictConfig, run_dir: Path, saved_run: Path | None = None,
                   choices: dict | None = None) -> dict[str, dict] | None:
    """Returns the summaries by split ({"test": ..., ["val": ...]}); None on ranks other than 0. With `saved_run`,
    the model is that run folder's (no training) and `choices` are its config-group choices (result labels)."""
    validate_config(cfg, trains=saved_run is None)
    splits = splits_to_rank(cfg)
    rank0 = process_rank() == 0
    if rank0:
        check_run_dir(run_dir, resuming=cfg.get("ckpt_path") == "last")
    data: GlossData = instantiate(cfg.dataset)
    if saved_run is not None:
        check_item_map(saved_run, data)
    model: Recommender = instantiate(cfg.model)
    choices = choices or {}
    model_name = cfg.get("model_name") or choices.get("model") or config_choice("model", getattr(model, "name", "model"))
    retriever_name = (choices.get("retriever") or config_choice("retriever", "none")) if model.uses_retriever else "none"
    if rank0:
        write_run_record(cfg, run_dir, data)
    log.info("dataset %s: %s", data.name, data.stats())

    run_name = "-".join([data.name, model_name] + ([retriever_name] if retriever_name != "none" else []))
    loggers = instantiate_loggers(cfg.get("logger"), run_dir, run_name)
    t0 = time.perf_counter()
    trainer = prepare_model(cfg, model, data, run_dir, loggers, saved_run)
    log.info("fit: %.1fs", time.perf_counter() - t0)
    if trainer is not None and trainer.global_rank != 0:
        return None
    log.info("ranking on %s", ranking_device(model))

    summaries = {}
    for split in splits:  # test last: used below
        ev, examples, targets, ranking = evaluate_split(model, data, split, cfg.eval.k, cfg.eval.get("max_users"), cfg.seed)
        summaries[split] = summary = metrics_summary(data.name, model_name, retriever_name, split, ev)
        user_ids = [data.split.user_ids[u] for u in examples[:, 0]]
        write_run_outputs(run_dir, summary, ev, user_ids, targets, ranking.items, data.catalog.item_ids)
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
