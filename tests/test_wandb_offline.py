"""logger=wandb, offline by default: a run leaves <run>/wandb/offline-run-*/ with the config, the metrics and the
segment plot (what `wandb sync` uploads); logger=csv records the test metrics. Tiny synthetic data, no network."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from gloss.experiment import run_experiment

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def write_tiny_dataset(root: Path, n_users: int = 60, n_items: int = 40, seed: int = 0) -> None:
    """The offline format: amazon2014/tiny/user_sequence.txt + item_titles.tsv."""
    rng = np.random.default_rng(seed)
    folder = root / "amazon2014" / "tiny"
    folder.mkdir(parents=True)
    kinds, colors = ["lipstick", "nail polish", "shampoo", "face cream"], ["red", "blue", "green", "pink", "black"]
    titles = [f"Brand{i % 7} {colors[i % 5]} {kinds[i % 4]} no {i}" for i in range(n_items)]
    (folder / "item_titles.tsv").write_text("asin\ttitle\n" + "".join(f"I{i:03d}\t{t}\n" for i, t in enumerate(titles)))
    lines = []
    for u in range(n_users):
        start = rng.integers(n_items)
        seq = [(start + step * rng.integers(1, 3)) % n_items for step in range(rng.integers(3, 12))]
        lines.append(f"U{u:03d} " + " ".join(f"I{i:03d}" for i in seq))
    (folder / "user_sequence.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def tiny(tmp_path: Path) -> dict:
    write_tiny_dataset(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # the config's default mode must hold
    env.update(
        GLOSS_DATA_DIR=str(tmp_path / "data"),
        GLOSS_CACHE_DIR=str(tmp_path / "cache"),
        OMP_NUM_THREADS="1",
        WANDB_CONFIG_DIR=str(tmp_path / "wandb_config"),
        WANDB_CACHE_DIR=str(tmp_path / "wandb_cache"),
        WANDB_DATA_DIR=str(tmp_path / "wandb_data"),
    )
    return env


def test_wandb_offline_run_folder(tiny: dict, tmp_path: Path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "run.py", "dataset=beauty", "dataset.name=tiny", "dataset.power_min_length=null",
           "model=lis", "retriever=bm25", "logger=wandb", f"hydra.run.dir={run_dir}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=tiny, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]

    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list((run_dir / "wandb").iterdir())  # offline mode by default, inside the run folder
    files = offline[0] / "files"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert json.loads((files / "metrics.json").read_text()) == metrics and metrics["model"] == "lis"
    assert "retriever:" in (files / "config_resolved.yaml").read_text()
    assert (files / "segments.png").read_bytes()[:8] == PNG
    images = list((files / "media" / "images").rglob("segments*.png"))
    assert len(images) == 1 and images[0].read_bytes()[:8] == PNG  # logged as wandb.Image
    table = json.loads(next((files / "media" / "table").rglob("examples*.table.json")).read_text())
    assert {"history (last 5)", "target", "top-5", "target rank"} <= set(table["columns"]) and 1 <= len(table["data"]) <= 8
    record = next(offline[0].glob("run-*.wandb")).read_bytes()  # what `wandb sync` uploads: config + history/summary
    for key in (b"test/recall@5", b"test/cold/ndcg@5", b"optimized_metric"):
        assert key in record, key


def test_csv_logger_gets_val_and_test_metrics(tiny: dict, tmp_path: Path):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        overrides = [f"paths.data_dir={tiny['GLOSS_DATA_DIR']}", f"paths.cache_dir={tiny['GLOSS_CACHE_DIR']}"]
        cfg = compose("config", overrides=overrides + ["dataset.name=tiny", "model=cooc", "logger=csv", "model_name=cooc", "eval.val=true"])
    (tmp_path / "run").mkdir()  # Hydra creates the run folder before the job starts
    summary = run_experiment(cfg, tmp_path / "run")
    csv_files = list((tmp_path / "run" / "csv").rglob("metrics.csv"))
    assert len(csv_files) == 1
    header, row = csv_files[0].read_text().splitlines()[:2]
    values = dict(zip(header.split(","), row.split(",")))
    assert float(values["test/recall@5"]) == pytest.approx(summary["overall"]["recall@5"])
    assert float(values["test/power/n_users"]) == summary["segments"]["power"]["n_users"]
    val = json.loads((tmp_path / "run" / "metrics_val.json").read_text())
    assert val["split"] == "val" and val["n_users"] < summary["n_users"]
    assert float(values["val/ndcg@5"]) == pytest.approx(val["overall"]["ndcg@5"])
