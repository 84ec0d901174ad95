"""A run folder: claimed by one run at a time (run.lock), refused when finished or unfinished, its records (Hydra's
.hydra/, config_resolved.yaml, items.tsv), and `load_run`, which rebuilds a finished run's data and model.

A run folder is data, never code: `load_run` instantiates only classes and functions defined in gloss (a planted
`_target_: torch.load` or `os.system` is refused before anything is built), and weights are read with
`torch.load(weights_only=True)` by the models.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_yaml_loader

from gloss.data import GlossData, serialize_title
from gloss.environment import write_environment
from gloss.errors import GlossError, RunFolderRefused
from gloss.eval import write_atomic
from gloss.models.base import Recommender, build_model

log = logging.getLogger("gloss")
ITEMS_FILE = "items.tsv"  # a run folder's item map: catalog index -> ASIN, title
LOCK_FILE = "run.lock"  # {"pid", "host"} of the run writing a folder, flock-ed while it runs (claimed)
CONFIG_FILE = "config_resolved.yaml"
RUN_MARKERS = {CONFIG_FILE, ".hydra", LOCK_FILE}  # what makes a folder a gloss run folder (besides its run.log)


# --- claiming a folder -------------------------------------------------------------------------------------------
def finished_refusal(run_dir: Path) -> str | None:
    """A finished run (metrics.json) is never overwritten."""
    if not (run_dir / "metrics.json").exists():
        return None
    return (f"{run_dir} holds a finished run (metrics.json); results are never overwritten: use a new folder "
            "(evaluate it again with: python eval.py run_dir=<run>)")


def foreign_refusal(run_dir: Path) -> str | None:
    """A run writes only into a new or empty folder or a gloss run folder, and never through a symlink planted there
    (run.log, a result, a temp file would otherwise be written outside the folder)."""
    if not run_dir.is_dir():
        return None
    entries = list(run_dir.iterdir())
    links = [p.name for p in entries if p.is_symlink()]
    if links:
        return f"{run_dir} holds symlinks ({', '.join(sorted(links)[:5])}); a run folder holds files only: use a new folder"
    names = {p.name for p in entries}
    if names - {"run.log"} and not names & RUN_MARKERS:
        return (f"{run_dir} is not empty and not a gloss run folder (no {CONFIG_FILE} or .hydra/); nothing there is "
                "overwritten: use a new folder")
    return None


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
def claimed(run_dir: Path, resuming: bool, cfg: DictConfig) -> Iterator[None]:
    """The one claim on a run folder, before anything is written there (Hydra writes nothing first: conf/config.yaml):
    refused (RunFolderRefused; a finished folder is left untouched) when it holds a finished run, another live run's
    run.lock, or an unfinished run without ckpt_path=last; then the job's .hydra/ record. At the end run.lock is
    removed, and a run that stopped before its results says whether there is anything to resume."""
    if (reason := foreign_refusal(run_dir) or finished_refusal(run_dir)) is not None:
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


def remove_empty_folders(folder: Path, top: Path) -> None:
    """`folder` and its parents up to and including `top`, each only while empty: the output folder Hydra made for a
    command that was refused (eval.py run_dir=<a folder that does not exist> creates nothing)."""
    for path in (folder, *folder.parents):
        if not path.is_relative_to(top) or not path.is_dir() or any(path.iterdir()):
            return
        path.rmdir()
        if path == top:
            return


# --- records ---------------------------------------------------------------------------------------------------------
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
        write_atomic(out / name, OmegaConf.to_yaml(node))


def write_run_record(cfg: DictConfig, run_dir: Path, data: GlossData, resuming: bool) -> None:
    """config_resolved.yaml (a resume keeps the first attempt's: its own goes beside it) and items.tsv."""
    target = run_dir / CONFIG_FILE
    if resuming and target.exists():
        target = run_dir / f"config_resolved.{datetime.now():%Y-%m-%d_%H-%M-%S_%f}.yaml"
    write_atomic(target, OmegaConf.to_yaml(cfg, resolve=True))
    write_atomic(run_dir / ITEMS_FILE, "".join(f"{asin}\t{title}\n" for asin, title in
                                               zip(data.catalog.item_ids, data.catalog.titles)))
    write_environment(run_dir, data.files, resuming)  # environment.json (a resume: beside the first attempt's)


def check_item_map(run_dir: Path, data: GlossData) -> None:
    """A saved run's model is only valid on the catalog it was trained on: the same items, in the same order, with the
    same titles. Lines end at "\\n" only (a title may hold other line separators, e.g. U+2028)."""
    path = run_dir / ITEMS_FILE
    if not path.is_file():
        raise GlossError(f"{path}: missing (not a gloss run folder, or one written before items.tsv existed)")
    saved = [tuple(line.split("\t", 1)) for line in path.read_bytes().decode().split("\n")[:-1]]
    catalog = data.catalog
    if [item for item, *_ in saved] != list(catalog.item_ids):
        raise GlossError(f"{path}: the run's catalog ({len(saved)} items) differs from dataset {data.name}'s "
                         f"({len(catalog)} items): the data changed since the run")
    changed = next((i for i, (pair, title) in enumerate(zip(saved, catalog.titles)) if pair[1:] != (title,)), None)
    if changed is not None:
        raise GlossError(f"{path}:{changed + 1}: item {catalog.item_ids[changed]}'s title differs from dataset "
                         f"{data.name}'s: the data changed since the run")


# --- reading a folder ------------------------------------------------------------------------------------------------
def check_targets(node: Any, key: str) -> None:
    """Every `_target_` under `node` names a class or function defined in gloss (a run folder is data: nothing else
    is instantiated from it)."""
    from hydra._internal.utils import _locate

    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None:
            obj = None
            if isinstance(target, str) and target.startswith("gloss."):
                try:
                    obj = _locate(target)
                except Exception:
                    obj = None
            if not (callable(obj) and getattr(obj, "__module__", "").startswith("gloss.")):
                raise GlossError(f"{key}._target_={target!r}: a run folder may only name gloss classes and functions; "
                                 "refused")
        for name, value in node.items():
            check_targets(value, f"{key}.{name}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_targets(value, f"{key}[{i}]")


def literal(node: Any) -> Any:
    """A saved config's values as they were written: an interpolation-like string (`${oc.env:...}`, `${a.b}`) is text,
    escaped so that OmegaConf never evaluates it."""
    if isinstance(node, dict):
        return {key: literal(value) for key, value in node.items()}
    if isinstance(node, list):
        return [literal(value) for value in node]
    return node.replace("${", "\\${") if isinstance(node, str) else node


def read_config(run_dir: Path) -> tuple[DictConfig, dict]:
    """A run folder's resolved config (its dataset and model checked by check_targets) and its config-group choices
    (model, retriever, ...: the result labels)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunFolderRefused(f"run_dir={run_dir}: not a gloss run folder (no {CONFIG_FILE})")
    try:
        cfg = OmegaConf.create(literal(yaml.load(path.read_text(), Loader=get_yaml_loader())))
    except Exception as e:
        raise GlossError(f"{path}: not a readable config ({type(e).__name__})") from e
    if not isinstance(cfg, DictConfig) or "dataset" not in cfg or "model" not in cfg:
        raise GlossError(f"{path}: not a gloss run config (no dataset or model)")
    for key in ("dataset", "model"):
        check_targets(OmegaConf.to_container(cfg[key], resolve=False), key)
    hydra_file = Path(run_dir) / ".hydra" / "hydra.yaml"
    choices = {}
    if hydra_file.is_file():
        saved = OmegaConf.to_container(OmegaConf.load(hydra_file), resolve=False)
        choices = {k: v for k, v in saved.get("hydra", {}).get("runtime", {}).get("choices", {}).items()
                   if isinstance(v, str)}
    return cfg, choices


def update_model_settings(saved: DictConfig, name: str, path: str = "model") -> list[str]:
    """A saved model node brought up to today's conf/model/<name>.yaml, in place, so that run folders written before a
    setting existed still load: a setting added since takes today's default (e.g. `loss: ce`, which is what older
    runs trained with), one that no longer exists is dropped; GLoSS+ parts likewise. Returns what changed, for the
    log. Nodes whose model config is gone or names another class are left as saved."""
    from gloss.config import model_config

    try:
        current = model_config(name)
    except GlossError:
        return []
    if current.get("_target_") != saved.get("_target_"):
        return []
    notes, plain = [], OmegaConf.to_container(current, resolve=False)
    for key in current:
        if key not in saved:
            saved[key] = current[key]
            notes.append(f"{path}.{key} added ({plain[key]!r:.60}, today's default)")
    for key in [k for k in saved if k not in current and k != "parts"]:
        del saved[key]
        notes.append(f"{path}.{key} dropped (no longer a setting)")
    for part, node in (saved.get("parts") or {}).items():
        notes += update_model_settings(node, str(part), f"{path}.parts.{part}")
    return notes


@dataclass
class LoadedRun:
    cfg: DictConfig  # the run's config, with the caller's overrides
    choices: dict  # its config-group choices (result labels)
    data: GlossData
    model: Recommender  # fitted: trained models with the folder's weights, heuristics refit (deterministic)
    trainer: Any  # the Lightning Trainer the model is placed by (None for heuristics)

    def history_indices(self, entries: list[str], titles: bool = False) -> np.ndarray:
        """Catalog indices of `entries` (oldest first): ASINs; with `titles`, other entries are titles mapped to their
        nearest catalog item by the run's retriever."""
        catalog = self.data.catalog
        index = {asin: i for i, asin in enumerate(catalog.item_ids)}
        unknown = [e for e in entries if e not in index]
        if unknown and not titles:
            raise GlossError(f"history: {len(unknown)} unknown ASIN(s) in dataset {self.data.name}: {unknown[:5]} "
                             "(titles=true maps titles to their nearest catalog item)")
        if unknown:
            if self.cfg.get("retriever") is None:
                raise GlossError("titles=true: the run's config has no retriever to map titles with")
            check_targets(OmegaConf.to_container(self.cfg.retriever, resolve=False), "retriever")
            retriever = instantiate(self.cfg.retriever)
            retriever.index(catalog.texts)
            hits = retriever.search([serialize_title(t) for t in unknown], 1)[0][:, 0]
            for title, item in zip(unknown, hits):
                log.info("history: %r -> %s %r", title, catalog.item_ids[item], catalog.titles[item])
                index[title] = int(item)
        return np.array([index[e] for e in entries], dtype=np.int64)

    def recommend(self, entries: list[str], k: int, titles: bool = False) -> list[dict]:
        """The top-k items after one history (ASINs, oldest first): [{"asin", "title", "score"}, ...], best first."""
        ranking = self.model.recommend([self.history_indices(entries, titles)], k)
        catalog = self.data.catalog
        return [{"asin": catalog.item_ids[i], "title": catalog.titles[i], "score": float(s)}
                for i, s in zip(ranking.items[0], ranking.scores[0]) if i >= 0]


def load_run(run_dir: Path | str, overrides: dict | None = None, out_dir: Path | None = None) -> LoadedRun:
    """A finished run's data and model, ready to rank (RecBole's load_data_and_model): e.g.
    `load_run("outputs/runs/beauty/sasrec/...", {"trainer": {"accelerator": "gpu"}}).model.recommend(histories, 10)`.
    `overrides` are merged over the saved config (trainer: where the model runs; eval: ranking settings)."""
    from gloss.training import Fitter

    run_dir = Path(run_dir).expanduser()
    cfg, choices = read_config(run_dir)
    if choices.get("model"):
        notes = update_model_settings(cfg.model, choices["model"])
        if notes:
            log.warning("%s was saved by an older gloss: %s", run_dir / CONFIG_FILE, "; ".join(notes))
    cfg = OmegaConf.merge(cfg, {"ckpt_path": None, "logger": None, "optimized_metric": None}, overrides or {})
    data: GlossData = instantiate(cfg.dataset)
    check_item_map(run_dir, data)
    model = build_model(cfg.model)
    trainer = Fitter(cfg, out_dir or run_dir, saved_run=run_dir).fit(model, data)
    return LoadedRun(cfg, choices, data, model, trainer)
