"""Sharded ranking (gloss.eval.sharded, eval.engine): shards of whole scoring batches, gathered in the users' order,
give the same Ranking, and the same metrics.json, as one process."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gloss.errors import GlossError
from gloss.eval.sharded import (Engine, batch_unit, close_clients, engine_settings, model_payload, pack, rank_shard,
                                rank_users, shard_bounds, unpack)
from gloss.models.base import BYTES_PER_ENTRY, configure_ranking
from tests.conftest import TINY, composed, run_cli
from tests.models.factory import make_model


def tiny_data(root: Path, cache: Path):
    return instantiate(composed(*TINY, f"paths.data_dir={root}", f"paths.cache_dir={cache}").dataset)


@pytest.mark.parametrize("n_users,unit,n_shards", [(100, 8, 4), (7, 8, 4), (64, 8, 8), (65, 8, 2), (5, 1, 9)])
def test_shards_cover_the_users_in_order_and_start_at_whole_batches(n_users, unit, n_shards):
    bounds = shard_bounds(n_users, unit, n_shards)
    assert bounds[0][0] == 0 and bounds[-1][1] == n_users and len(bounds) <= n_shards
    assert all(a < b for a, b in bounds) and all(b == a2 for (_, b), (a2, _) in zip(bounds, bounds[1:]))
    assert all(a % unit == 0 for a, _ in bounds)


def test_histories_travel_as_one_flat_array_and_come_back_the_same():
    histories = [np.array([3, 1, 2]), np.array([], dtype=np.int64), np.array([7]), np.array([5, 5])]
    flat, lengths = pack(histories)
    assert flat.tolist() == [3, 1, 2, 7, 5, 5] and lengths.tolist() == [3, 0, 1, 2]
    back = unpack(flat, lengths)
    assert len(back) == 4 and all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(histories, back))
    assert unpack(*pack([])) == []


def test_engine_is_off_by_default_and_bad_settings_name_their_key():
    assert engine_settings(composed().eval.engine, "eval.engine") is None  # conf/config.yaml: one process
    assert engine_settings(None, "eval.engine") is None  # a run folder saved before the engine existed
    assert engine_settings({"workers": 2}, "engine") == Engine("engine", 2, None, 1)
    assert engine_settings({"workers": 1, "address": "tcp://h:8786"}, "eval.engine").address == "tcp://h:8786"
    for node, key in (({"workers": 0}, "eval.engine.workers="), ({"workers": "2"}, "eval.engine.workers="),
                      ({"workers": 2, "shards_per_worker": True}, "eval.engine.shards_per_worker="),
                      ({"address": ""}, "eval.engine.address=")):
        with pytest.raises(GlossError, match=key.replace(".", r"\.")):
            engine_settings(node, "eval.engine")


def test_a_bad_engine_key_stops_the_run_before_data_loads():
    from gloss.validation import validate_config

    with pytest.raises(GlossError, match=r"eval\.engine\.address=''"):
        validate_config(composed("model=cooc", "eval.engine.address=''"))


@pytest.mark.slow
def test_a_model_travels_without_its_trainer_and_ranks_the_same(tiny_root, tmp_path):
    """The payload a worker receives leaves a Lightning Trainer behind (loggers, loaders: not needed to rank)."""
    import lightning as L

    data = tiny_data(tiny_root, tmp_path / "c")
    model = make_model("cooc")
    model.fit(data)
    model.attached = L.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    histories = data.split.histories(data.split.test_examples())
    expected = model.recommend(histories, 10)
    got = rank_shard(model_payload(model, "eval.engine"), "digest", pack(histories), 10, None)
    assert np.array_equal(got.items, expected.items) and np.array_equal(got.scores, expected.scores)


def test_a_shard_ranks_with_one_torch_thread_whatever_the_process_had(tiny_root, tmp_path):
    """Each Dask thread is one core: a worker that inherited OMP_NUM_THREADS=2 (a 2-thread run's environment) would run
    2 torch threads per worker, 4 on 2 cores, which made 50x ranking 2.3x slower."""
    import torch

    data = tiny_data(tiny_root, tmp_path / "c")
    sasrec = make_model("sasrec", hidden=16, max_len=8)
    sasrec.build_for(data, seed=0)
    histories = data.split.histories(data.split.test_examples())
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        got = rank_shard(model_payload(sasrec, "eval.engine"), "digest-threads", pack(histories), 10, None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(got.items, sasrec.recommend(histories, 10).items)


@pytest.mark.slow
def test_two_local_workers_rank_like_one_process_in_many_shards(tiny_root, tmp_path):
    """A budget of 4 users per scoring batch, so that the 60 users make 8 shards on 2 worker processes: cooc (sparse)
    and a SASRec (dense torch scores, random weights) rank exactly as in this process."""
    data = tiny_data(tiny_root, tmp_path / "c")
    cooc = make_model("cooc")
    cooc.fit(data)
    sasrec = make_model("sasrec", hidden=16, max_len=8)
    sasrec.build_for(data, seed=0)
    histories = data.split.histories(data.split.test_examples())
    engine = Engine("eval.engine", 2, None, 4)
    try:
        configure_ranking(4 * BYTES_PER_ENTRY * len(data.catalog) / 2**20)
        for model in (cooc, sasrec):
            assert batch_unit(model) == 4 and len(shard_bounds(len(histories), 4, 8)) == 8
            for k in (5, 100):
                one, sharded = model.recommend(histories, k), rank_users(model, histories, k, engine)
                assert np.array_equal(one.items, sharded.items) and np.array_equal(one.scores, sharded.scores)
    finally:
        configure_ranking(None)
        close_clients()


@pytest.mark.slow
def test_metrics_json_is_byte_identical_with_two_workers_for_cooc_and_a_trained_sasrec(tiny_root, tmp_path):
    engine = ["eval.engine.workers=2", "eval.engine.shards_per_worker=2"]
    runs = {}
    for name, extra in (("one", []), ("two", engine)):
        runs[name] = tmp_path / f"cooc-{name}"
        proc = run_cli("run.py", [*TINY, "model=cooc", f"hydra.run.dir={runs[name]}", *extra], tiny_root, tmp_path / "c")
        assert proc.returncode == 0, proc.stderr[-3000:]
    log = (runs["two"] / "run.log").read_text()
    assert "ranking engine: Dask LocalCluster with 2 workers" in log
    assert "[distributed." not in log  # no scheduler warnings about workers leaving when the run closes its cluster
    for name in ("metrics.json", "per_user.jsonl"):
        assert (runs["one"] / name).read_bytes() == (runs["two"] / name).read_bytes(), name

    # a SASRec trained in this process (its Trainer attached) ranked on 2 workers, then its folder in one process
    sasrec = tmp_path / "sasrec"
    tiny = ["model=sasrec", "model.hidden=16", "model.max_len=8", "trainer.max_epochs=2", "eval.val=true"]
    proc = run_cli("run.py", [*TINY, *tiny, *engine, f"hydra.run.dir={sasrec}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = tmp_path / "sasrec-eval"
    proc = run_cli("eval.py", [f"run_dir={sasrec}", f"hydra.run.dir={again}", "+eval.val=true"], tiny_root, tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ranking engine" not in (again / "eval.log").read_text()
    for name in ("metrics.json", "metrics_val.json", "per_user.jsonl"):
        assert (sasrec / name).read_bytes() == (again / name).read_bytes(), name
    assert json.loads((sasrec / "metrics.json").read_text())["n_users"] == 60
    assert OmegaConf.load(sasrec / "config_resolved.yaml").eval.engine.workers == 2
