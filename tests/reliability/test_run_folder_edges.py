"""Edges of run folders (issue: "a run folder is data, never code ... the remaining edges of bad input"): writes that a
planted symlink cannot redirect, folders that are not gloss run folders, saved configs read as data, checkpoints
checked before any work, and predict.py's arguments."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from gloss.eval import write_atomic
from tests.conftest import TINY, run_cli


def test_an_atomic_write_replaces_a_planted_symlink_and_never_writes_through_it(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json.tmp").symlink_to(outside)  # a fixed temp name was the way in
    (run_dir / "metrics.json").symlink_to(outside)
    write_atomic(run_dir / "metrics.json", "{}\n")
    assert outside.read_text() == "keep me"
    assert not (run_dir / "metrics.json").is_symlink() and (run_dir / "metrics.json").read_text() == "{}\n"


def test_a_saved_config_is_read_as_data_not_resolved_again(tmp_path, monkeypatch):
    from gloss.run_folder import read_config

    monkeypatch.setenv("GLOSS_SECRET", "leaked")
    (tmp_path / "config_resolved.yaml").write_text(yaml.safe_dump({
        "dataset": {"_target_": "gloss.data.load_dataset", "name": "a ${oc.env:GLOSS_SECRET} b"},
        "model": {"_target_": "gloss.models.popularity.Popularity", "exclude_seen": False},
        "model_name": "${model.missing}"}))
    cfg, _ = read_config(tmp_path)
    assert cfg.dataset.name == "a ${oc.env:GLOSS_SECRET} b" and cfg.model_name == "${model.missing}"


@pytest.mark.slow
def test_a_symlink_or_foreign_files_in_the_run_folder_are_refused_before_anything_is_written(tiny_root, tmp_path):
    outside = tmp_path / "outside.log"
    outside.write_text("keep me\n")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "run.log").symlink_to(outside)
    proc = run_cli("run.py", [*TINY, "model=popularity", f"hydra.run.dir={linked}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 2 and "symlink" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert outside.read_text() == "keep me\n" and sorted(p.name for p in linked.iterdir()) == ["run.log"]

    mine = tmp_path / "my_folder"
    mine.mkdir()
    (mine / "results.md").write_text("my own notes\n")
    proc = run_cli("run.py", [*TINY, "model=popularity", f"hydra.run.dir={mine}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 2 and "not a gloss run folder" in proc.stderr, proc.stderr[-2000:]
    assert sorted(p.name for p in mine.iterdir()) == ["results.md"]
    assert (mine / "results.md").read_text() == "my own notes\n"


@pytest.mark.slow
def test_checkpoints_are_checked_before_data_is_loaded_and_a_truncated_one_is_one_line(tiny_root, tmp_path):
    args = [*TINY, "model=sasrec", "trainer.max_epochs=1"]
    proc = run_cli("run.py", [*args, f"ckpt_path={tmp_path / 'nope.ckpt'}", f"hydra.run.dir={tmp_path / 'a'}"],
                   tiny_root, tmp_path / "c")
    assert proc.returncode == 2 and "ckpt_path=" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "dataset tiny" not in (tmp_path / "a" / "run.log").read_text()  # refused before loading data

    run_dir = tmp_path / "b"
    assert run_cli("run.py", [*args, "eval.max_users=5", f"hydra.run.dir={run_dir}"], tiny_root,
                   tmp_path / "c").returncode == 0
    for name in ("metrics.json", "per_user.jsonl", "results.md"):
        (run_dir / name).unlink()  # as if it had died while ranking
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    proc = run_cli("run.py", [*args, "trainer.max_epochs=2", "ckpt_path=last", f"hydra.run.dir={run_dir}"],
                   tiny_root, tmp_path / "c")
    assert proc.returncode == 2 and "last.ckpt" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
def test_predict_refuses_non_boolean_titles_non_integer_k_and_empty_entries_and_eval_compares_titles(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli("run.py", [*TINY, "model=popularity", f"hydra.run.dir={run_dir}"], tiny_root,
                   tmp_path / "c").returncode == 0
    items = [line.split("\t")[0] for line in (run_dir / "items.tsv").read_text().splitlines()]
    for bad, key in ((["k=true"], "k="), (["titles=maybe"], "titles="), (["titles=true"], "history")):
        history = f"history=[{items[0]},'']" if bad == ["titles=true"] else f"history=[{items[0]}]"
        proc = run_cli("predict.py", [f"run_dir={run_dir}", history, *bad], tiny_root, tmp_path / "c")
        assert proc.returncode == 2 and key in proc.stderr and proc.stdout == "", (bad, proc.stderr[-2000:])

    tsv = run_dir / "items.tsv"
    asin, title = tsv.read_text().split("\n", 1)[0].split("\t")
    tsv.write_text(tsv.read_text().replace(f"{asin}\t{title}\n", f"{asin}\t{title} (renamed)\n", 1))
    proc = run_cli("eval.py", [f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'e'}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 2 and "items.tsv" in proc.stderr and "title" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
def test_eval_of_a_missing_run_folder_is_one_line_and_creates_nothing(tiny_root, tmp_path):
    absent = tmp_path / "absent"
    proc = run_cli("eval.py", [f"run_dir={absent}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 2 and "not a gloss run folder" in proc.stderr and "Traceback" not in proc.stderr
    assert not absent.exists()
