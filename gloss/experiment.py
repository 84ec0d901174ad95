"""One experiment, as configured: data, model, [train: gloss.training], rank the evaluated splits, write results.

`run.py` (a run from config) and `eval.py` (a saved run re-ranked) call this; `predict.py` reuses `load_run`.
Under DDP every rank trains; only rank 0 ranks users and writes (the other ranks return None after training).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from gloss.callbacks.ranking_eval import sample_examples
from gloss.data import GlossData
from gloss.errors import GlossError, RunFolderRefused
from gloss.eval import (METRIC_KEYS, evaluate_ranking, metrics_summary, per_user_lines, results_table, write_atomic,
                        write_run_outputs)
from gloss.loggers import instantiate_loggers, log_results
from gloss.models import CompositeRecommender, Recommender, TrainableRecommender
from gloss.validation import validate_config

log = logging.getLogger("gloss")
ITEMS_FILE = "items.tsv"  # a run folder's item map: catalog index -> ASIN, title
LOCK_FILE = "run.lock"  # {"pid", "host"} of the run writing a folder, flock-ed while it runs (claimed_run_dir)


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


def finished_refusal(run_dir: Path) -> str | None:
    """A finished run (metrics.json) is never overwritten."""
    if not (run_dir / "metrics.json").exists():
        return None
    return (f"{run_dir} holds a finished run (metrics.json); results are never overwritten: use a new folder "
            "(evaluate it again with: python eval.py run_dir=<run>)")


def unfinished_refusal(run_dir: Path, resuming: bool) -> str | None:
    """A run with a checkpoint only continues with ckpt_path=last. A folder with neither checkpoint nor results (an
    attempt that stopped earlier, e.g. while loading data) takes a new run."""
    if resuming or not (run_dir / "checkpoints" / "last.ckpt").exists():
        return None
    return f"{run_dir} holds an unfinished run: resume it with ckpt_path=last, or use a new folder"


def take_lock(run_dir: Path) -> tuple[int, dict | None]:
    """run.lock ({pid, host}), created exclusively or taken over, and flock-ed until the run ends (the OS lets go when
    the process dies, so a lock nobody holds is a killed run's: taken over). Refused when another process holds it,
    when it was written on another host (whose processes this one cannot see) or is unreadable. Returns the lock's
    file descriptor and the killed run's {pid, host} when it was taken over."""
    path = run_dir / LOCK_FILE
    host = socket.gethostname()
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
            fcntl.flock(fd, fcntl.LOCK_EX)  # ours: waits only while another run reads it
            owner = None
        except FileExistsError:
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # its run just ended
                continue
            owner = lock_owner(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = False
            except BlockingIOError:
                held = True
            if held or owner is None or owner["host"] != host:
                os.close(fd)
                who = f"pid {owner['pid']} on {owner['host']}" if owner else "another run"
                raise RunFolderRefused(f"{run_dir} is in use by {who} ({path}); use a new folder, or remove {path} "
                                       "if no run uses it")
        try:
            if os.fstat(fd).st_ino == path.stat().st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # removed by its run, which ended after we opened it: start again
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": host}).encode(), 0)
    return fd, owner


def lock_owner(fd: int) -> dict | None:
    """The {pid, host} a run.lock holds; None while its run is still writing it, or when it is not a gloss lock."""
    try:
        owner = json.loads(os.pread(fd, 4096, 0))
    except ValueError:
        return None
    return owner if isinstance(owner, dict) and {"pid", "host"} <= owner.keys() else None


@contextmanager
def claimed_run_dir(run_dir: Path, resuming: bool, cfg: DictConfig) -> Iterator[None]:
    """The one claim on a run folder, before anything is written there (Hydra writes nothing first: conf/config.yaml):
    refused (RunFolderRefused; a finished folder is left untouched) when it holds a finished run, another live run's
    run.lock, or an unfinished run without ckpt_path=last; then the job's .hydra/ record. At the end run.lock is
    removed, and a run that stopped before its results says whether there is anything to resume."""
    if (reason := finished_refusal(run_dir)) is not None:
        raise RunFolderRefused(reason)
    lock, stale = take_lock(run_dir)
    try:
        if (reason := finished_refusal(run_dir) or unfinished_refusal(run_dir, resuming)) is not None:
            raise RunFolderRefused(reason)  # (finished: by the run that held the lock until now)
        if stale is not None:
            log.warning("%s: stale run.lock of pid %s (its process is gone) taken over", run_dir, stale["pid"])
        write_hydra_record(run_dir, cfg, resuming)
        yield
    except BaseException as e:
        if not isinstance(e, RunFolderRefused) and not (run_dir / "metrics.json").exists():
            if (run_dir / "checkpoints" / "last.ckpt").exists():
                log.warning("%s: stopped before its results; resume with ckpt_path=last", run_dir)
            else:
                log.warning("%s: stopped before any result or checkpoint: nothing to resume; a new run may use this "
                            "folder", run_dir)
        raise
    finally:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)  # while still holding it: the next run creates a new one
        os.close(lock)


def write_hydra_record(run_dir: Path, cfg: DictConfig, resuming: bool) -> None:
    """Hydra's record of the job (.hydra/config.yaml, hydra.yaml, overrides.yaml), in .hydra/<time>/ for a resume so
    that the first run's is kept. Nothing outside a Hydra job (e.g. compose() in tests)."""
    if not HydraConfig.initialized():
        return
    out = run_dir / ".hydra"
    if resuming and (out / "config.yaml").exists():
        out = out / f"{datetime.now():%Y-%m-%d_%H-%M-%S_%f}"
    out.mkdir(parents=True, exist_ok=True)
    hydra_cfg = HydraConfig.instance().cfg
    records = {"config.yaml": cfg, "hydra.yaml": hydra_cfg, "overrides.yaml": hydra_cfg.hydra.overrides.task}
    for name, node in records.items():
        (out / name).write_text(OmegaConf.to_yaml(node))


def write_run_record(cfg: DictConfig, run_dir: Path, data: GlossData, resuming: bool) -> None:
    """config_resolved.yaml (a resume keeps the first attempt's: its own goes beside it) and items.tsv."""
    target = run_dir / "config_resolved.yaml"
    if resuming and target.exists():
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
    from that run folder's weights on the configured Trainer's device. Composites (GLoSS+): each part fit the same
    way in <run>/parts/<name>. Returns the Trainer (None for heuristics and composites)."""
    if isinstance(model, CompositeRecommender):
        if saved_run is not None:
            raise GlossError(f"model {model.name}: eval.py cannot rebuild a composite from its run folder yet; rerun it "
                             "with run.py (its parts are refit)")
        model.fit_with(data, lambda part, part_data, name: fit_part(part_config(cfg, name), part, part_data,
                                                                    run_dir / "parts" / name))
        return None
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


def part_config(cfg: DictConfig, name: str) -> DictConfig:
    """The run's config for training the part `name` (<stage>/<source>): a source that trains differently from the
    composite's recipe (the generator: prompt DataModule, its own epochs) has `source_recipes.<source>`, whose
    DataModule replaces the run's and whose other nodes (trainer, callbacks) are merged over the run's."""
    recipe = (cfg.get("source_recipes") or {}).get(name.rsplit("/", 1)[-1])
    if recipe is None:
        return cfg
    part = cfg.copy()
    with open_dict(part):
        for key, value in recipe.items():
            part[key] = value if key == "datamodule" else OmegaConf.merge(part.get(key) or {}, value)
    return part


def fit_part(cfg: DictConfig, part: Recommender, data: GlossData, part_dir: Path) -> None:
    """One part of a composite: fit (heuristics) or trained with the run's Trainer, callbacks and DataModule in its own
    folder (checkpoints, weights), no loggers (its val/* would mix with the composite's)."""
    if not isinstance(part, TrainableRecommender):
        part.fit(data)
        return
    from gloss.training import train

    log.info("training part %s in %s", type(part).__name__, part_dir)
    part_dir.mkdir(parents=True, exist_ok=True)
    train(cfg, part, data, part_dir, loggers=[])


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
    ev = evaluate_ranking(ranking.items, targets, segments)
    log.info("%s: %s", split, ", ".join(f"{key} {ev.overall[key]:.4f}" for key in METRIC_KEYS))
    return ev, examples, targets, ranking


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
    the model is that run folder's (no training) and `choices` are its config-group choices (result labels).
    The config is checked first (gloss.validation); rank 0 then holds the run folder throughout (claimed_run_dir);
    the other DDP ranks train in it and write no results."""
    validate_config(cfg, trains=saved_run is None)
    if process_rank() != 0:
        return experiment(cfg, run_dir, saved_run, choices)
    with claimed_run_dir(run_dir, cfg.get("ckpt_path") == "last", cfg):
        return experiment(cfg, run_dir, saved_run, choices)


def training_of(trainer, saved_run: Path | None) -> dict | None:
    """metrics.json's "training": this run's (gloss.training.training_record); with `saved_run` (eval.py) that run's,
    from its metrics.json; None for heuristics."""
    if saved_run is not None:
        path = saved_run / "metrics.json"
        return json.loads(path.read_text()).get("training") if path.is_file() else None
    if trainer is None:
        return None
    from gloss.training import training_record

    return training_record(trainer)


def experiment(cfg: DictConfig, run_dir: Path, saved_run: Path | None, choices: dict | None) -> dict[str, dict] | None:
    splits = splits_to_rank(cfg)
    rank0 = process_rank() == 0
    data: GlossData = instantiate(cfg.dataset)
    if saved_run is not None:
        check_item_map(saved_run, data)
    model: Recommender = instantiate(cfg.model)
    choices = choices or {}
    model_name = cfg.get("model_name") or choices.get("model") or config_choice("model", getattr(model, "name", "model"))
    retriever_name = (choices.get("retriever") or config_choice("retriever", "none")) if model.uses_retriever else "none"
    if rank0:
        write_run_record(cfg, run_dir, data, cfg.get("ckpt_path") == "last")
    log.info("dataset %s: %s", data.name, data.stats())

    run_name = "-".join([data.name, model_name] + ([retriever_name] if retriever_name != "none" else []))
    loggers = instantiate_loggers(cfg.get("logger"), run_dir, run_name)
    t0 = time.perf_counter()
    trainer = prepare_model(cfg, model, data, run_dir, loggers, saved_run)
    log.info("fit: %.1fs", time.perf_counter() - t0)
    if trainer is not None and trainer.global_rank != 0:
        return None
    log.info("ranking on %s", ranking_device(model))
    training = training_of(trainer, saved_run)

    summaries, per_user = {}, {}
    for split in splits:  # test last: used below
        ev, examples, targets, ranking = evaluate_split(model, data, split, cfg.eval.k, cfg.eval.get("max_users"), cfg.seed)
        summaries[split] = summary = metrics_summary(data.name, model_name, retriever_name, split, ev, training)
        user_ids = [data.split.user_ids[u] for u in examples[:, 0]]
        per_user[split] = per_user_lines(ev, user_ids, targets, ranking.items, data.catalog.item_ids)
    write_ablation(run_dir, model, data, summaries, cfg)
    write_run_outputs(run_dir, summaries, per_user)
    log_results(loggers, cfg, summaries, run_dir, model, data, examples, ranking.items)
    print(f"\n{model_name} + {retriever_name} on {data.name} (test, {summary['n_users']} users)\n{results_table(summary)}")
    print(f"results: {run_dir}")
    return summaries


def write_ablation(run_dir: Path, model: Recommender, data: GlossData, summaries: dict[str, dict], cfg: DictConfig) -> None:
    """The model's variants (Recommender.variants), each ranked on the same users of every split as the model, next to
    its own row: ablation.json ({label: {split: summary}}) and ablation.md. Before metrics.json (a finished run)."""
    variants = model.variants()
    if not variants:
        return
    rows = {"(full model)": summaries}
    for label, variant in variants.items():
        rows[label] = {}
        for split in summaries:
            ev, *_ = evaluate_split(variant, data, split, cfg.eval.k, cfg.eval.get("max_users"), cfg.seed)
            rows[label][split] = metrics_summary(data.name, label, summaries[split]["retriever"], split, ev)
    write_atomic(run_dir / "ablation.json", json.dumps(rows, indent=2) + "\n")
    md = []
    for split in summaries:
        md += [f"# Ablation on {data.name} ({split}, {summaries[split]['n_users']} users)", "",
               "| variant | " + " | ".join(METRIC_KEYS) + " |", "|---|" + "---|" * len(METRIC_KEYS)]
        md += [f"| {label} | " + " | ".join(f"{row[split]['overall'][k]:.4f}" for k in METRIC_KEYS) + " |"
               for label, row in rows.items()]
        md.append("")
    write_atomic(run_dir / "ablation.md", "\n".join(md))
    print("\n" + "\n".join(md))


def optimized_value(cfg: DictConfig, summaries: dict[str, dict] | None) -> float | None:
    """The value a Hydra sweeper optimizes: `optimized_metric` (val/<metric>) of this run, or None."""
    metric = cfg.get("optimized_metric")
    if metric is None or summaries is None:
        return None
    split, _, name = metric.partition("/")
    return float(summaries[split]["overall"][name])
