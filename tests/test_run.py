"""End-to-end: run.py through Hydra on the tiny dataset; output files, schema, and user-facing errors."""
import json
from pathlib import Path

import pytest

from tests.conftest import TINY, run_cli


def run(args: list[str], data_root: Path, tmp_path: Path):
    """run.py into tmp_path/run, caching under tmp_path/cache."""
    return run_cli("run.py", [*args, f"hydra.run.dir={tmp_path / 'run'}"], data_root, tmp_path / "cache")


@pytest.mark.slow
def test_cooc_run_writes_results(tiny_root: Path, tmp_path: Path):
    proc = run([*TINY, "model=cooc", "model.exclude_seen=true"], tiny_root, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "run"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "tiny" and metrics["model"] == "cooc" and metrics["retriever"] == "none"
    assert metrics["split"] == "test" and metrics["n_users"] == 60
    assert set(metrics["overall"]) == {"recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr"}
    assert set(metrics["segments"]) == {"cold", "regular", "power"}
    assert sum(s["n_users"] for s in metrics["segments"].values()) == 60
    rows = [json.loads(line) for line in (out / "per_user.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and metrics["overall"]["recall@5"] == sum(r["recall@5"] for r in rows) / 60
    assert (out / "results.md").is_file() and (out / "config_resolved.yaml").is_file()
    assert "| all | 60 |" in proc.stdout


@pytest.mark.slow
def test_lis_bm25_run_records_retriever(tiny_root: Path, tmp_path: Path):
    proc = run([*TINY, "model=lis", "retriever=bm25"], tiny_root, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["retriever"] == "bm25"


@pytest.mark.slow
def test_missing_data_is_one_clear_line(tmp_path: Path):
    proc = run(["model=cooc"], tmp_path / "absent", tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "GLOSS_DATA_DIR" in proc.stderr


@pytest.mark.slow
def test_malformed_file_names_file_and_line(tiny_root: Path, tmp_path: Path):
    seq = tiny_root / "amazon2014" / "tiny" / "user_sequence.txt"
    seq.write_text(seq.read_text() + "ORPHAN\n")
    proc = run([*TINY, "model=cooc"], tiny_root, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{seq}:61:" in proc.stderr
    lenient = run([*TINY, "model=cooc", "dataset.strict=false"], tiny_root, tmp_path / "lenient")
    assert lenient.returncode == 0, lenient.stderr[-2000:]
    assert "skipped 1 malformed line" in (tmp_path / "lenient" / "run" / "run.log").read_text()
