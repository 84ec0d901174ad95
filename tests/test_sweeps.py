"""Multiruns through run.py on the tiny dataset: the Optuna search (conf/hparams_search/) optimises the VALIDATION
metric, and the launchers (conf/hydra/launcher/) give one complete run folder per job."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY, run_cli

pytestmark = pytest.mark.slow  # every test here is a multirun of run.py


def multirun(args: list[str], data_root: Path, tmp_path: Path, timeout: int = 600):
    """`run.py -m` on the tiny dataset into tmp_path/sweep, caching under tmp_path/cache."""
    return run_cli("run.py", ["-m", *TINY, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"], data_root,
                   tmp_path / "cache", timeout=timeout)


def job_dirs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: int(p.name.split("_")[0]))


@pytest.mark.filterwarnings("ignore:Deprecated API features detected")
def test_optuna_search_optimises_validation_ndcg(tiny_root: Path, tmp_path: Path):
    # 30 validation users (the default 5% is 3 users): trials then differ on val, and val differs from test.
    # The study goes to SQLite (optuna 2.x needs SQLAlchemy<2 there) so that every trial's value can be checked.
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    proc = multirun(["hparams_search=cooc_optuna", "hydra.sweeper.n_trials=4", "dataset.val_fraction=0.5",
                     f"hydra.sweeper.storage={storage}"], tiny_root, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    jobs = job_dirs(sweep)
    assert len(jobs) == 4
    val, params = [], []
    for job in jobs:
        test_metrics = json.loads((job / "metrics.json").read_text())
        val_metrics = json.loads((job / "metrics_val.json").read_text())
        assert test_metrics["split"] == "test" and val_metrics["split"] == "val" and val_metrics["model"] == "cooc"
        val.append(val_metrics["overall"]["ndcg@5"])
        cfg = yaml.safe_load((job / "config_resolved.yaml").read_text())
        params.append({f"model.{k}": cfg["model"][k] for k in ("window", "history_items", "decay", "backward_weight")})
    assert len({tuple(p.values()) for p in params}) > 1, "the sampler should try different settings"
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert results["best_value"] == max(val)  # the validation metric of the best trial, not a test number
    assert results["best_params"] in [p for p, v in zip(params, val) if v == max(val)]
    import optuna  # optuna 2.x on SQLAlchemy 1.4 warns about SQLAlchemy 2.0 on import (filtered above)

    study = optuna.load_study(study_name="cooc_tiny", storage=storage)  # named after dataset.name
    trials = sorted((sorted(t.params.items()), t.value) for t in study.trials)
    assert trials == sorted((sorted(p.items()), v) for p, v in zip(params, val))  # each trial's value: its val ndcg@5


def test_optuna_search_refuses_a_test_metric(tiny_root: Path, tmp_path: Path):
    proc = multirun(["hparams_search=cooc_optuna", "hydra.sweeper.n_trials=2", "optimized_metric=test/ndcg@5"],
                    tiny_root, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "sweep" / "optimization_results.yaml").exists()


def test_local_parallel_launcher_one_result_per_job(tiny_root: Path, tmp_path: Path):
    proc = multirun(["hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2", "model=cooc,popularity"],
                    tiny_root, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    jobs = job_dirs(sweep)
    assert len(jobs) == 2 and jobs[0].name.endswith("model=cooc") and jobs[1].name.endswith("model=popularity")
    assert sorted(sweep.rglob("metrics.json")) == [j / "metrics.json" for j in jobs]
    assert [json.loads((j / "metrics.json").read_text())["model"] for j in jobs] == ["cooc", "popularity"]


def test_submitit_local_launcher(tiny_root: Path, tmp_path: Path):
    """The code path of hydra/launcher=slurm, run as local submitit processes."""
    proc = multirun(["hydra/launcher=slurm_local", "model=cooc,popularity"], tiny_root, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_dirs(tmp_path / "sweep")
    assert [json.loads((j / "metrics.json").read_text())["model"] for j in jobs] == ["cooc", "popularity"]
