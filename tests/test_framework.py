"""The experiment framework's shape: ranking runs on the Trainer's device, DDP writes one result, a run folder is
reusable (eval.py, predict.py), and nothing is overwritten. How configs compose: tests/test_config.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gloss.callbacks.ranking_eval import RankingEvalCallback
from gloss.data.samplers import rank_share
from gloss.experiment import run_experiment
from gloss.models.sasrec import SASRec
from tests.conftest import TINY, composed, run_cli
from tests.models.factory import make_model
from tests.models.conftest import rule_data

# --- devices and ranks -----------------------------------------------------------------------------------------------
class SpySASRec(SASRec):
    """Records the device of every catalog scoring call."""

    devices: list[str] = []

    def score(self, histories):
        SpySASRec.devices.append(str(self.device))
        return super().score(histories) if self.device.type != "meta" else np.zeros((len(histories), self.n_items))


def test_ranking_runs_on_the_strategy_root_device_after_teardown(tiny_root, tmp_path, monkeypatch):
    """Lightning's teardown moves the module to the CPU; ranking must go back to the Trainer's device. A CPU stand-in
    for a GPU: after teardown the strategy's root device becomes `meta`, so a ranking left on the CPU is caught."""
    from lightning.pytorch.strategies import SingleDeviceStrategy

    original = SingleDeviceStrategy.teardown

    def teardown(self):
        original(self)
        self._root_device = torch.device("meta")

    monkeypatch.setattr(SingleDeviceStrategy, "teardown", teardown)
    monkeypatch.setenv("GLOSS_CACHE_DIR", str(tmp_path / "cache"))
    cfg = composed(*TINY, f"paths.data_dir={tiny_root}", f"paths.cache_dir={tmp_path / 'cache'}", "model=sasrec",
                   f"model._target_={__name__}.SpySASRec", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                   "callbacks.best_checkpoint=null")
    SpySASRec.devices = []
    (tmp_path / "run").mkdir()
    run_experiment(cfg, tmp_path / "run")
    assert SpySASRec.devices[0] == "cpu"  # validation ranking during fit
    assert SpySASRec.devices[-1] == "meta"  # test ranking: on the strategy's root device


def test_batches_are_shared_out_evenly_by_rank():
    batches = list(range(11))
    shares = [rank_share(batches, r, 2) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 5 and not set(shares[0]) & set(shares[1])
    assert rank_share(batches, 0, 1) == batches


def test_validation_metrics_reduced_over_rank_shards_equal_one_process():
    data = rule_data(n_users=200)
    model = make_model("sasrec", max_len=8, hidden=16)
    torch.manual_seed(0)
    model.build_for(data, seed=0)
    model.eval()
    callback = RankingEvalCallback(model, data, k=10)
    shards = [callback.metric_sums(callback.examples[r::3])[1] for r in range(3)]
    reduced = callback.compute(0, 3, reduce=lambda _: np.sum(shards, axis=0))
    assert reduced == pytest.approx(callback.compute())


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_both_ranks_and_writes_one_result(tiny_root, tmp_path):
    # 5 % validation users (3), as when the tolerance below was measured: the 500-user floor would make half of the 60
    # tiny users validation users, which train on one item fewer and leave the 2-rank run too few steps to compare
    args = [*TINY, "model=sasrec", "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "datamodule.batch_size=32",
            "dataset.min_val_users=0"]
    ddp = run_cli("run.py", [*args, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                         f"hydra.run.dir={tmp_path / 'ddp'}"], tiny_root, tmp_path / "cache")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_cli("run.py", [*args, f"hydra.run.dir={tmp_path / 'one'}"], tiny_root, tmp_path / "cache")
    assert single.returncode == 0, single.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "ddp").glob("metrics*.json")) == ["metrics.json"]
    assert (tmp_path / "ddp" / "train_ddp_process_1.log").is_file()  # rank 1 ran (and wrote no results)
    assert ddp.stdout.count("results:") == 1
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text())["overall"] for d in ("ddp", "one"))
    # 2 ranks x batch 32 take half the optimizer steps of 1 x 32: close, not equal (measured: see README)
    assert abs(a["recall@10"] - b["recall@10"]) < 0.25 and a["recall@10"] > 0.3


# --- run folders: safety, eval.py, predict.py --------------------------------------------------------------------------
@pytest.mark.slow
def test_one_epoch_override_trains_one_epoch_and_logs_progress(tiny_root, tmp_path):
    proc = run_cli("run.py", [*TINY, "model=sasrec", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}"],
               tiny_root, tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 0  # one epoch, not the recipe's 200
    log = (tmp_path / "run" / "run.log").read_text()
    assert "epoch 0: step" in log and "train/loss" in log and "val/loss" in log and "epoch 1" not in log
    assert "ranking on cpu" in log


@pytest.mark.slow
def test_eval_py_reproduces_a_trained_run_and_predict_py_answers(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("run.py", [*TINY, "model=sasrec", "trainer.max_epochs=2", f"hydra.run.dir={run_dir}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = run_cli("eval.py", [f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'eval'}"], tiny_root, tmp_path / "c")
    assert again.returncode == 0, again.stderr[-3000:]
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, tmp_path / "eval"))
    assert first == second  # deterministic model: equal
    assert not (tmp_path / "eval" / "checkpoints").exists()  # no training

    items = [line.split("\t")[0] for line in (run_dir / "items.tsv").read_text().splitlines()]
    pred = run_cli("predict.py", [f"run_dir={run_dir}", f"history=[{items[0]},{items[1]},{items[2]}]", "k=4"], tiny_root, tmp_path / "c")
    assert pred.returncode == 0, pred.stderr[-3000:]
    answer = json.loads(pred.stdout)  # stdout holds only the JSON
    assert len(answer) == 4 and set(answer[0]) == {"asin", "title", "score"}
    assert [a["score"] for a in answer] == sorted((a["score"] for a in answer), reverse=True)
    assert len({a["asin"] for a in answer}) == 4 and {a["asin"] for a in answer} <= set(items)
    for bad in (["history=[NOPE]"], ["history=[]"]):
        proc = run_cli("predict.py", [f"run_dir={run_dir}", *bad], tiny_root, tmp_path / "c")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stdout == "", proc.stderr[-2000:]
    proc = run_cli("predict.py", [f"run_dir={tmp_path / 'absent'}", "history=[A]"], tiny_root, tmp_path / "c")
    assert proc.returncode == 2 and "not a gloss run folder" in proc.stderr


@pytest.mark.slow
def test_generator_run_folder_reloads_with_its_saved_settings(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "model=gloss_scratch", "retriever=bm25", "debug=fast", "model.backbone.hidden_size=32",
            "model.backbone.vocab_size=300", "model.generation.batch_size=16", f"hydra.run.dir={run_dir}"]
    proc = run_cli("run.py", args, tiny_root, tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    settings = json.loads((run_dir / "generator" / "gloss_generation.json").read_text())
    assert settings["rerank"]["neighbours"] == 10
    again = run_cli("eval.py", [f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'eval'}"], tiny_root, tmp_path / "c")
    assert again.returncode == 0, again.stderr[-3000:]
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, tmp_path / "eval"))
    assert first["model"] == second["model"] == "gloss_scratch" and first["retriever"] == second["retriever"] == "bm25"
    assert second["n_users"] == first["n_users"] and first["overall"] == pytest.approx(second["overall"], abs=1e-9)


@pytest.mark.slow
def test_heuristic_run_folder_reloads_by_refit(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli("run.py", [*TINY, "model=cooc", f"hydra.run.dir={run_dir}"], tiny_root, tmp_path / "c").returncode == 0
    again = run_cli("eval.py", [f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'eval'}"], tiny_root, tmp_path / "c")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run_dir / "metrics.json").read_text() == (tmp_path / "eval" / "metrics.json").read_text()


@pytest.mark.slow
def test_finished_run_folder_is_refused_before_any_work_and_kept_intact(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli("run.py", [*TINY, "model=cooc", f"hydra.run.dir={run_dir}"], tiny_root, tmp_path / "c").returncode == 0
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    proc = run_cli("run.py", [*TINY, "model=popularity", f"hydra.run.dir={run_dir}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 2 and "finished run" in proc.stderr and "Traceback" not in proc.stderr
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before  # run.log, .hydra/, results


@pytest.mark.slow
def test_resume_keeps_the_first_config_and_continues(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "model=sasrec", f"hydra.run.dir={run_dir}"]
    first = run_cli("run.py", [*args, "trainer.max_epochs=1", "eval.k=-1"], tiny_root, tmp_path / "c")
    assert first.returncode == 2 and "eval.k=-1" in first.stderr  # bad key: refused before any work
    assert not (run_dir / "config_resolved.yaml").exists()
    assert run_cli("run.py", [*args, "trainer.max_epochs=1", "eval.max_users=5"], tiny_root, tmp_path / "c").returncode == 0
    (run_dir / "metrics.json").unlink()  # as if it had died while ranking
    for name in ("per_user.jsonl", "results.md"):
        (run_dir / name).unlink()
    config = (run_dir / "config_resolved.yaml").read_text()
    hydra_config = (run_dir / ".hydra" / "config.yaml").read_text()
    fresh = run_cli("run.py", [*args, "trainer.max_epochs=2"], tiny_root, tmp_path / "c")
    assert fresh.returncode == 2 and "unfinished run" in fresh.stderr
    resumed = run_cli("run.py", [*args, "trainer.max_epochs=2", "ckpt_path=last"], tiny_root, tmp_path / "c")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "config_resolved.yaml").read_text() == config
    assert (run_dir / ".hydra" / "config.yaml").read_text() == hydra_config
    assert len(list(run_dir.glob("config_resolved.*.yaml"))) == 1  # the resume's, beside the first
    assert len(list((run_dir / ".hydra").glob("*/config.yaml"))) == 1  # the resume's; the refused one wrote none
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1


@pytest.mark.slow
def test_sweeps_may_only_optimize_a_validation_metric(tiny_root, tmp_path):
    proc = run_cli("run.py", [*TINY, "model=cooc", "optimized_metric=test/ndcg@5", f"hydra.run.dir={tmp_path / 'a'}"],
               tiny_root, tmp_path / "c")
    assert proc.returncode == 2 and "never on test" in proc.stderr
    proc = run_cli("run.py", [*TINY, "model=cooc", "optimized_metric=val/ndcg@5", "eval.max_users=20",
                          f"hydra.run.dir={tmp_path / 'b'}"], tiny_root, tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "b" / "metrics_val.json").read_text())["split"] == "val"
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["n_users"] == 20
