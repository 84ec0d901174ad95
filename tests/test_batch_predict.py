"""Batch inference (gloss.batch_predict, `predict.py users=... out=...`): every user's top-k after its full known
sequence, in part files that a re-run resumes, merged into one Parquet file."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from hydra.utils import instantiate

from gloss.batch_predict import predict_all, read_users
from gloss.errors import GlossError
from gloss.eval.outputs import UMASK
from tests.conftest import TINY, composed, run_cli
from tests.models.factory import make_model


@pytest.fixture
def loaded(tiny_root: Path, tmp_path: Path) -> SimpleNamespace:
    """A LoadedRun's fields for a fitted cooc on the tiny data (no run folder needed)."""
    data = instantiate(composed(*TINY, f"paths.data_dir={tiny_root}", f"paths.cache_dir={tmp_path / 'c'}").dataset)
    model = make_model("cooc")
    model.fit(data)
    return SimpleNamespace(data=data, model=model)


class Stopping:
    """A model that ranks `chunks` chunks, then stops as a killed process would."""

    def __init__(self, model, chunks: int):
        self.model, self.left, self.calls = model, chunks, 0

    def recommend(self, histories, k):
        self.calls += 1
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.model.recommend(histories, k)


def test_every_users_top_k_after_the_full_sequence_best_first(loaded, tmp_path):
    out = tmp_path / "recs.parquet"
    result = predict_all(loaded, tmp_path, "all", out, 5, 16, None)
    split, catalog = loaded.data.split, loaded.data.catalog
    frame = pl.read_parquet(out)
    assert frame.columns == ["user", "rank", "item", "score"] and result["rows"] == len(frame) == 60 * 5
    assert result["users"] == 60 and frame["user"].unique(maintain_order=True).to_list() == split.user_ids
    expected = loaded.model.recommend(split.sequences, 5)  # full sequences: train + val + test items
    assert frame["item"].to_list() == [catalog.item_ids[i] for i in expected.items.ravel()]
    assert np.array_equal(frame["score"].to_numpy(), expected.scores.ravel())
    assert frame["rank"].to_list() == list(range(1, 6)) * 60
    assert not (tmp_path / "recs.parquet.parts").exists()
    assert out.stat().st_mode & 0o777 == 0o666 & ~UMASK  # as any file the user writes, not mkstemp's 0600


def test_a_killed_prediction_resumes_its_chunks_and_other_settings_are_refused(loaded, tmp_path):
    straight = tmp_path / "straight.parquet"
    predict_all(loaded, tmp_path, "all", straight, 5, 16, None)
    out = tmp_path / "recs.parquet"
    model = loaded.model
    loaded.model = Stopping(model, chunks=2)
    with pytest.raises(KeyboardInterrupt):
        predict_all(loaded, tmp_path, "all", out, 5, 16, None)
    parts = tmp_path / "recs.parquet.parts"
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "part-000000.parquet", "part-000001.parquet"]
    with pytest.raises(GlossError, match=r"recs\.parquet\.parts: parts of another prediction \(differs in k\)"):
        predict_all(loaded, tmp_path, "all", out, 10, 16, None)

    loaded.model = Stopping(model, chunks=10)
    predict_all(loaded, tmp_path, "all", out, 5, 16, None)
    assert loaded.model.calls == 2  # 60 users in 4 chunks of 16: the 2 written are skipped
    assert pl.read_parquet(out).equals(pl.read_parquet(straight))
    assert not parts.exists()

    loaded.model = Stopping(model, chunks=0)  # a finished prediction: nothing is ranked again
    assert predict_all(loaded, tmp_path, "all", out, 5, 16, None)["rows"] == 300
    with pytest.raises(GlossError, match=r"out=.*recs\.parquet: exists and holds another prediction \(differs in "
                                         r"chunk_users, k\)"):
        predict_all(loaded, tmp_path, "all", out, 3, 10, None)


def test_a_users_file_keeps_its_order_skips_blank_lines_and_names_an_unknown_user(loaded, tmp_path):
    ids = loaded.data.split.user_ids
    users = tmp_path / "users.txt"
    users.write_text(f"{ids[7]}\n\n  {ids[2]}  \n")
    assert read_users(str(users), ids, "tiny").tolist() == [7, 2]
    predict_all(loaded, tmp_path, str(users), tmp_path / "two.parquet", 3, 100, None)
    assert pl.read_parquet(tmp_path / "two.parquet")["user"].to_list() == [ids[7]] * 3 + [ids[2]] * 3
    users.write_text(f"{ids[0]}\nU9999\n")
    with pytest.raises(GlossError, match=rf"{users}:2: user 'U9999' is not in dataset tiny"):
        read_users(str(users), ids, "tiny")
    with pytest.raises(GlossError, match="users=nowhere.txt: neither 'all' nor a file"):
        read_users("nowhere.txt", ids, "tiny")


@pytest.mark.slow
def test_predict_cli_writes_every_user_and_the_engine_writes_the_same_rows(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli("run.py", [*TINY, "model=cooc", f"hydra.run.dir={run_dir}"], tiny_root, tmp_path / "c").returncode == 0
    args = [f"run_dir={run_dir}", "users=all", "k=7", "chunk_users=25"]
    proc = run_cli("predict.py", [*args, f"out={tmp_path / 'one.parquet'}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == {"out": str(tmp_path / "one.parquet"), "users": 60, "rows": 420}
    assert "predict: chunk 3/3 written" in proc.stderr
    proc = run_cli("predict.py", [*args, f"out={tmp_path / 'two.parquet'}", "engine.workers=2"], tiny_root,
                   tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pl.read_parquet(tmp_path / "one.parquet").equals(pl.read_parquet(tmp_path / "two.parquet"))

    for bad, key in ((["users=all"], "out="), (["users=all", f"out={tmp_path / 'x.csv'}"], "out="),
                     (["users=all", "out=/nowhere/x.parquet"], "out="), ([], "history="),
                     (["users=all", "out=x.parquet", "history=[A]"], "both given"),
                     (["users=all", "out=x.parquet", "chunk_users=0"], "chunk_users="),
                     (["users=all", "out=x.parquet", "engine.workers=0"], "engine.workers=")):
        proc = run_cli("predict.py", [f"run_dir={run_dir}", *bad], tiny_root, tmp_path / "c")
        assert proc.returncode == 2 and key in proc.stderr and proc.stdout == "", (bad, proc.stderr[-2000:])
