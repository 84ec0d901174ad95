"""Run-folder safety: one claim (run.lock) before any write, refusals as one line, outputs written so that an
interrupted write never looks finished, folders named after the data, and a max_time cut that says so."""
from __future__ import annotations

import fcntl
import json
import logging
import re
import socket
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import gloss.eval.outputs
from gloss.errors import GlossError, user_error
from gloss.experiment import run_experiment
from gloss.config import training_settings
from tests.conftest import TINY, composed, run_cli


def tiny_cfg(data_root: Path, cache: Path, *overrides: str):
    """The config of a run on the tiny dataset under data_root, caching under cache."""
    return composed(*TINY, f"paths.data_dir={data_root}", f"paths.cache_dir={cache}", *overrides)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under `folder`, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:") or "Traceback" in line]


# --- item 1: one claim before any write --------------------------------------------------------------------------
@pytest.mark.slow
def test_a_second_run_into_a_finished_folder_is_refused_before_writing_anything(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli("run.py", [*TINY, "model=cooc", f"hydra.run.dir={run_dir}"], tiny_root, tmp_path / "c")
    assert first.returncode == 0, first.stderr[-2000:]
    assert not (run_dir / "run.lock").exists()  # released at the end
    before = snapshot(run_dir)
    proc = run_cli("run.py", [*TINY, "model=popularity", f"hydra.run.dir={run_dir}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 2
    assert len(error_lines(proc)) == 1 and "finished run" in error_lines(proc)[0]
    assert snapshot(run_dir) == before  # not a byte: no .hydra/<time>/, nothing appended to run.log


@pytest.mark.parametrize("host", ["this", "elsewhere"])
def test_a_folder_another_run_holds_is_refused_untouched(tiny_root, tmp_path, monkeypatch, host):
    """A run on this host holds its run.lock (flock) while it runs; another host's processes cannot be seen from here,
    so its lock refuses the folder whether held or not."""
    monkeypatch.setenv("GLOSS_CACHE_DIR", str(tmp_path / "c"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock = run_dir / "run.lock"
    lock.write_text(json.dumps({"pid": 4321, "host": socket.gethostname() if host == "this" else "elsewhere.example"}))
    before = snapshot(run_dir)
    with open(lock) as other_run:
        if host == "this":
            fcntl.flock(other_run, fcntl.LOCK_EX)
        with pytest.raises(GlossError, match="in use by pid 4321"):
            run_experiment(tiny_cfg(tiny_root, tmp_path / "c", "model=cooc"), run_dir)
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_a_run_in_progress_holds_its_folder_against_a_second_run(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli("run.py", [*TINY, "model=sasrec", "trainer.max_epochs=100000", "trainer.max_time=00:00:05:00",
                               "callbacks.early_stopping=null", f"hydra.run.dir={run_dir}"],
                    tiny_root, tmp_path / "c", background=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)  # training: the folder is claimed
        assert json.loads((run_dir / "run.lock").read_text())["pid"] == first.pid
        second = run_cli("run.py", [*TINY, "model=cooc", f"hydra.run.dir={run_dir}"], tiny_root, tmp_path / "c")
        assert second.returncode == 2 and first.poll() is None
        assert len(error_lines(second)) == 1 and f"in use by pid {first.pid}" in error_lines(second)[0]
    finally:
        first.kill()
        first.communicate()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tiny_root, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("GLOSS_CACHE_DIR", str(tmp_path / "c"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with caplog.at_level(logging.WARNING, logger="gloss"):
        run_experiment(tiny_cfg(tiny_root, tmp_path / "c", "model=cooc"), run_dir)
    assert f"stale run.lock of pid {dead.pid}" in caplog.text
    assert (run_dir / "metrics.json").is_file() and not (run_dir / "run.lock").exists()


@pytest.mark.slow
def test_two_multiruns_started_together_get_their_own_sweep_folders(tiny_root, tmp_path):
    procs = [run_cli("run.py", ["-m", *TINY, f"model={m}"], tiny_root, tmp_path / "c", cwd=tmp_path, background=True)
             for m in ("cooc", "popularity")]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
    sweeps = sorted((tmp_path / "outputs" / "multirun").iterdir())
    assert len(sweeps) == 2
    models = set()
    for sweep in sweeps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}", sweep.name)  # microseconds: unique per start
        models |= {o for o in OmegaConf.load(sweep / "multirun.yaml").hydra.overrides.task if o.startswith("model=")}
        assert len(list(sweep.glob("*/metrics.json"))) == 1
    assert models == {"model=cooc", "model=popularity"}  # each multirun.yaml is its own


# --- item 3: an interrupted write never looks finished -------------------------------------------------------------
def test_an_interrupted_output_write_leaves_no_metrics_and_the_folder_can_be_finished(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GLOSS_CACHE_DIR", str(tmp_path / "c"))
    cfg = tiny_cfg(tiny_root, tmp_path / "c", "model=cooc", "eval.val=true")
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    def disk_full(summary: dict) -> str:
        raise OSError("disk full")

    with monkeypatch.context() as patch:  # fails while the result files are being written
        patch.setattr(gloss.eval.outputs, "results_table", disk_full)
        with pytest.raises(OSError, match="disk full"):
            run_experiment(cfg, run_dir)
    assert not (run_dir / "metrics.json").exists()  # metrics.json marks a finished run: written last
    assert not (run_dir / "run.lock").exists()
    run_experiment(cfg, run_dir)  # no checkpoint to resume: a new run finishes the folder
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_users"] == 60 and (run_dir / "metrics_val.json").is_file()
    assert len((run_dir / "per_user.jsonl").read_text().splitlines()) == 60
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]


# --- item 13: folder names, a failed data load, the validation table ---------------------------------------------
@pytest.mark.slow
def test_run_folder_is_named_after_dataset_name_and_results_md_has_val_and_test(tiny_root, tmp_path):
    proc = run_cli("run.py", [*TINY, "model=cooc", "eval.val=true"], tiny_root, tmp_path / "c", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list((tmp_path / "outputs" / "runs").glob("*/*/*"))
    assert [r.relative_to(tmp_path / "outputs" / "runs").parts[:2] for r in runs] == [("tiny", "cooc")]
    md = (runs[0] / "results.md").read_text()
    assert "on tiny (val)" in md and "on tiny (test)" in md and md.count("| all |") == 2


def test_a_run_that_fails_loading_data_says_so_and_its_folder_takes_a_new_run(tiny_root, tmp_path, monkeypatch,
                                                                                caplog):
    monkeypatch.setenv("GLOSS_CACHE_DIR", str(tmp_path / "c"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with caplog.at_level(logging.WARNING, logger="gloss"), pytest.raises(Exception) as failure:
        run_experiment(tiny_cfg(tmp_path / "absent", tmp_path / "c", "model=cooc"), run_dir)
    assert "GLOSS_DATA_DIR" in str(user_error(failure.value))
    assert f"{run_dir}: stopped before any result or checkpoint: nothing to resume" in caplog.text
    run_experiment(tiny_cfg(tiny_root, tmp_path / "c", "model=cooc"), run_dir)
    assert (run_dir / "metrics.json").is_file()


# --- item 14: epochs bound the default; a max_time cut is loud ---------------------------------------------------
def test_the_generator_default_is_bounded_by_epochs_only(tmp_path):
    def trainer(*overrides):
        cfg = tiny_cfg(tmp_path, tmp_path, "model=gloss_scratch", *overrides)
        return training_settings(OmegaConf.to_container(cfg.model.recipe, resolve=True), cfg)["trainer"]

    default = trainer()
    assert default.get("max_time") is None and default["max_epochs"] == 9  # beauty: conf/tuned/gloss_scratch_beauty.yaml
    guarded = trainer("trainer.max_time=00:01:00:00")
    assert guarded["max_time"] == "00:01:00:00"  # still available as an optional budget guard


@pytest.mark.slow
def test_a_max_time_cut_is_a_warning_in_run_log_and_recorded_in_metrics(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("run.py", [*TINY, "model=sasrec", "trainer.max_epochs=1000", "trainer.max_time=00:00:00:02",
                              "callbacks.early_stopping=null", "eval.max_users=10", f"hydra.run.dir={run_dir}"],
                   tiny_root, tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-2000:]
    training = json.loads((run_dir / "metrics.json").read_text())["training"]
    assert training["cut_by_time"] is True and training["max_epochs"] == 1000 and training["epochs_completed"] < 1000
    warnings = [line for line in (run_dir / "run.log").read_text().splitlines() if "[WARNING]" in line]
    assert any("trainer.max_time stopped training" in line for line in warnings)


def test_a_training_within_its_epochs_is_recorded_as_not_cut(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GLOSS_CACHE_DIR", str(tmp_path / "c"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = tiny_cfg(tiny_root, tmp_path / "c", "model=sasrec", "trainer.max_epochs=1", "trainer.max_time=00:01:00:00",
                   "trainer.enable_progress_bar=false", "eval.max_users=10")
    run_experiment(cfg, run_dir)
    training = json.loads((run_dir / "metrics.json").read_text())["training"]
    assert training == {"epochs_completed": 1, "max_epochs": 1, "cut_by_time": False}


@pytest.mark.slow
def test_a_run_stopped_by_sigterm_exits_143_not_0_and_can_be_resumed(tiny_root, tmp_path):
    """Lightning turns SIGTERM (a scheduler's preemption, `kill`) into a graceful stop whose SystemExit carries no code,
    so the run exited 0 without results: a job script would take it for a finished run."""
    run_dir = tmp_path / "run"
    args = [*TINY, "model=sasrec", "trainer.max_epochs=100000", "callbacks.early_stopping=null",
            f"hydra.run.dir={run_dir}"]
    first = run_cli("run.py", args, tiny_root, tmp_path / "c", background=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "last.ckpt").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert not (run_dir / "metrics.json").exists() and "resume with ckpt_path=last" in (run_dir / "run.log").read_text()
