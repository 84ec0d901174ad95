"""The remaining bad-input edges of issue 26 ("a run folder is data, never code ... the remaining edges of bad
input"): each mistake is one line naming what is wrong, exit 2, before any data is loaded."""
from __future__ import annotations

import re

import pytest

from gloss.errors import GlossError
from tests.conftest import TINY, run_cli
from tests.reliability.test_settings_checked import checked


def one_line(proc) -> str:
    """The single stderr line of a refused command (asserts exit 2, no traceback, nothing else on stderr)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("script, args, expected", [
    ("run.py", ["model=sasrecc"], ["model/sasrecc", "sasrec", "cooc"]),
    ("run.py", ["model=sasrec", "trainer.max_epoch=3"], ["trainer.max_epoch", "max_epochs"]),
    ("run.py", ["model=lis", "retriever=nope"], ["retriever/nope", "bm25"]),
    ("run.py", ["model=cooc", "model.window=[1"], ["model.window=[1"]),
    ("eval.py", ["run_dir=x", "trainer.max_epoch=3"], ["trainer.max_epoch"]),
    ("predict.py", ["run_dir=x", "model=sasrecc"], ["model"]),
])
def test_a_hydra_level_mistake_is_one_line_and_exit_2(tiny_root, tmp_path, script, args, expected):
    dataset = TINY if script == "run.py" else []  # eval.py and predict.py take the dataset from the run folder
    proc = run_cli(script, [*dataset, *args, f"hydra.run.dir={tmp_path / 'run'}"], tiny_root, tmp_path / "c",
                   timeout=120)
    line = one_line(proc)
    for word in expected:
        assert word in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_gpu_trainer_without_a_gpu_is_one_line_before_data_loads(tiny_root, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_cli("run.py", [*TINY, "model=sasrec", "trainer=gpu", f"hydra.run.dir={tmp_path / 'run'}"], tiny_root,
                   tmp_path / "c", timeout=120)
    assert "trainer.accelerator=gpu" in one_line(proc)
    assert not (tmp_path / "c").exists()  # no dataset was built


@pytest.mark.slow
def test_a_cache_dir_that_is_a_file_is_one_line(tiny_root, tmp_path):
    (tmp_path / "f").write_text("not a folder")
    for cache in (tmp_path / "f", tmp_path / "f" / "sub"):
        proc = run_cli("run.py", [*TINY, "model=cooc", f"hydra.run.dir={tmp_path / 'run'}"], tiny_root, cache,
                       timeout=120)
        assert "paths.cache_dir" in one_line(proc) and str(tmp_path / "f") in proc.stderr


@pytest.mark.parametrize("overrides, key", [
    (["model=cooc", "model.history_items=0"], "model.history_items=0"),
    (["model=cooc", "model.decay=-1"], "model.decay=-1"),
    (["model=cooc", "model.window=0"], "model.window=0"),
    (["model=cooc", "model.backward_weight=-0.5"], "model.backward_weight=-0.5"),
    (["model=lis", "retriever=bm25", "model.n_queries=0"], "model.n_queries=0"),
    (["model=lis", "retriever=bm25", "model.query_decay=-1"], "model.query_decay=-1"),
    (["model=lis", "retriever=bm25", "model.extra_depth=-1"], "model.extra_depth=-1"),
    (["model=sasrec", "model.dropout=1.5"], "model.dropout=1.5"),
    (["model=gloss_plus", "model.sources=[sasrec,cooc]", "+model.parts.cooc.window=0"], "model.parts.cooc.window=0"),
    (["model=gloss_plus", "model.sources=[sasrec,cooc]", "model.depth=0"], "model.depth=0"),
])
def test_an_out_of_range_model_setting_is_one_line_naming_its_key(overrides, key):
    with pytest.raises(GlossError, match=re.escape(key)):
        checked(*overrides)
