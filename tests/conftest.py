"""Shared test helpers: a tiny synthetic dataset in the offline format (`tiny_root`, and `TINY`, the overrides that
select it), `composed()` (the Hydra config as run.py sees it), `run_cli()` (run.py, eval.py, predict.py as a user runs
them), and the real data when present.

Tiers: tests that launch a subprocess (run.py, eval.py, predict.py, multiruns, DDP) or take more than about 5 s are
marked `slow`; `bash scripts/test.sh -m "not slow"` is the inner loop, `bash scripts/test.sh` the full suite."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Mapping

import pytest
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TINY = ["dataset=beauty", "dataset.name=tiny", "dataset.power_min_length=null"]  # conftest's tiny dataset, as overrides

COLORS = ["red", "blue", "green", "black", "white", "pink", "gold", "silver"]
KINDS = ["lipstick", "shampoo", "mascara", "serum", "lotion"]


def write_tiny_dataset(root: Path, name: str = "tiny", n_users: int = 60, seed: int = 0) -> Path:
    """Users walk a fixed item cycle (item i -> i+1), so next-item structure is learnable and checkable."""
    rng = random.Random(seed)
    items = [f"B{i:05d}" for i in range(len(COLORS) * len(KINDS))]
    folder = root / "amazon2014" / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "item_titles.tsv", "w") as f:
        f.write("asin\ttitle\n")
        for i, asin in enumerate(items):
            f.write(f"{asin}\t{COLORS[i % len(COLORS)]} {KINDS[i // len(COLORS)]} number {i}\n")
        f.write("B99999\t\n")  # untitled item: must be dropped
    with open(folder / "user_sequence.txt", "w") as f:
        for u in range(n_users):
            start, length = rng.randrange(len(items)), rng.randint(3, 12)
            seq = [items[(start + j) % len(items)] for j in range(length)]
            if u % 10 == 0:
                seq.insert(1, "B99999")
            f.write(f"U{u:04d} " + " ".join(seq) + "\n")
    return root


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    env = os.environ.get("GLOSS_DATA_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not (path / "amazon2014" / "beauty" / "user_sequence.txt").is_file():
        pytest.skip(f"Amazon 2014 offline data not found under {path} (set GLOSS_DATA_DIR)")
    return path


def composed(*overrides: str):
    """conf/config.yaml composed with `overrides`, as run.py would see it (no Hydra run folder)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def run_cli(script: str, args: list[str], data_root: Path, cache: Path, *, timeout: float = 300,
            env: Mapping[str, str | None] | None = None, cwd: Path = REPO, background: bool = False):
    """Run `python <REPO>/<script> <args>` (run.py, eval.py, predict.py; a multirun passes "-m" in `args`) the way a
    user does, offline: GLOSS_DATA_DIR=data_root, GLOSS_CACHE_DIR=cache, HF_HUB_OFFLINE=1, OMP_NUM_THREADS=1,
    WANDB_MODE=offline over the test's own environment; `env` adds to that, and a None value removes the variable.
    Returns the CompletedProcess (text stdout/stderr), or with background=True the running Popen (pipes open)."""
    full = {**os.environ, "GLOSS_DATA_DIR": str(data_root), "GLOSS_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    command = dict(args=[sys.executable, str(REPO / script), *args], cwd=cwd, env=full, text=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if background:
        return subprocess.Popen(**command)
    return subprocess.run(**command, timeout=timeout)


@pytest.fixture(autouse=True)
def no_ranking_budget_left_behind():
    """An in-process run sets the process-wide ranking budget (gloss.models.base.configure_ranking); every test starts
    without one, so a model's own batch_size applies unless the test configures a budget."""
    from gloss.models import base

    base.configure_ranking(None)
    yield
    base.configure_ranking(None)
