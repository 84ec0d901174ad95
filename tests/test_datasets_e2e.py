"""End to end: run.py on datasets read by the generic source, each from its own conf/dataset/*.yaml: a MovieLens-1M
`ratings.dat` (cooc, lis + bm25, sasrec), a CSV with user,item,timestamp (conf/dataset/table.yaml; cooc with
leave-one-out and temporal split, lis, sasrec) and an Amazon Reviews 2023 category (JSON lines; cooc, lis, sasrec). Fixtures: tests/data/fixtures.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.data.fixtures import write_amazon2023, write_movielens_1m, write_table_csv


def run(args: list[str], data_root: Path, tmp_path: Path, name: str = "run"):
    proc = run_cli("run.py", [*args, f"hydra.run.dir={tmp_path / name}"], data_root, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / name / "metrics.json").read_text())


@pytest.mark.slow
def test_movielens_1m_cooc_lis_sasrec(tmp_path: Path):
    root = write_movielens_1m(tmp_path / "data")
    cooc = run(["dataset=movielens_1m", "model=cooc"], root, tmp_path, "cooc")
    assert cooc["dataset"] == "ml-1m" and cooc["n_users"] == 40 and cooc["overall"]["recall@10"] > 0.5
    lis = run(["dataset=movielens_1m", "model=lis", "retriever=bm25"], root, tmp_path, "lis")
    assert lis["retriever"] == "bm25" and lis["n_users"] == 40
    sasrec = run(["dataset=movielens_1m", "model=sasrec", "trainer.max_epochs=1"], root, tmp_path, "sasrec")
    assert sasrec["n_users"] == 40 and "training" in sasrec
    items = (tmp_path / "cooc" / "items.tsv").read_text(encoding="utf-8").splitlines()
    assert len(items) == 40 and any("Café" in line for line in items)  # latin-1 read as text


@pytest.mark.slow
def test_csv_table_cooc_leave_one_out_and_temporal(tmp_path: Path):
    root = write_table_csv(tmp_path / "data")
    loo = run(["dataset=table", "dataset.name=shop", "model=cooc"], root, tmp_path, "loo")
    assert loo["dataset"] == "shop" and loo["n_users"] == 40
    temporal = run(["dataset=table", "dataset.name=shop", "model=cooc", "dataset.split=temporal", "eval.val=true"],
                   root, tmp_path, "temporal")
    assert 0 < temporal["n_users"] < 40  # only users with an item in the test period (t >= T_test) are ranked
    assert (tmp_path / "temporal" / "metrics_val.json").is_file()
    lis = run(["dataset=table", "dataset.name=shop", "model=lis"], root, tmp_path, "lis")
    assert lis["model"] == "lis" and lis["retriever"] == "dense" and lis["n_users"] == 40
    sasrec = run(["dataset=table", "dataset.name=shop", "model=sasrec", "trainer.max_epochs=1"], root, tmp_path, "sas")
    assert sasrec["n_users"] == 40 and "training" in sasrec


@pytest.mark.slow
def test_amazon2023_cooc_lis_sasrec(tmp_path: Path):
    root = write_amazon2023(tmp_path / "data", gz=True)
    metrics = run(["dataset=amazon2023", "model=cooc"], root, tmp_path)
    assert metrics["dataset"] == "amazon2023_All_Beauty" and metrics["n_users"] == 40
    lis = run(["dataset=amazon2023", "model=lis"], root, tmp_path, "lis")
    assert lis["dataset"] == "amazon2023_All_Beauty" and lis["retriever"] == "dense" and lis["n_users"] == 40
    sasrec = run(["dataset=amazon2023", "model=sasrec", "trainer.max_epochs=1"], root, tmp_path, "sasrec")
    assert sasrec["n_users"] == 40 and "training" in sasrec


@pytest.mark.slow
def test_missing_file_and_bad_column_are_one_line_exit_2(tmp_path: Path):
    proc = run_cli("run.py", ["dataset=movielens_1m", "model=cooc", f"hydra.run.dir={tmp_path / 'run'}"],
                   tmp_path, tmp_path / "cache")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    expected = tmp_path / "movielens" / "ml-1m" / "ratings.dat"
    assert f"error: expected data file not found: {expected} (dataset.interactions.file" in proc.stderr
    root = write_table_csv(tmp_path / "data")
    proc = run_cli("run.py", ["dataset=table", "dataset.name=shop", "dataset.interactions.user=customer", "model=cooc",
                              f"hydra.run.dir={tmp_path / 'run2'}"], root, tmp_path / "cache")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (f"error: {root / 'shop' / 'interactions.csv'}: no column 'customer' (dataset.interactions.user); its "
            "columns: user, item, timestamp") in proc.stderr
