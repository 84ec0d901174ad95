"""Adding a model is one class and one YAML (README, "Add a model"): the new model runs alone and as a GLoSS+ source
with no other change."""
from __future__ import annotations

import json

import pytest

from tests.conftest import TINY, run_cli

TOY_YAML = """\
# A model added for the test: tests/toy_model.py
_target_: tests.toy_model.NextById
popularity_weight: 0.1
exclude_seen: false
"""


@pytest.mark.slow
def test_a_new_model_runs_alone_and_as_a_gloss_plus_source(tiny_root, tmp_path):
    conf = tmp_path / "my_conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "next_by_id.yaml").write_text(TOY_YAML)
    searchpath = f"hydra.searchpath=[file://{conf}]"

    alone = run_cli("run.py", [*TINY, "model=next_by_id", searchpath, f"hydra.run.dir={tmp_path / 'alone'}"],
                    tiny_root, tmp_path / "c")
    assert alone.returncode == 0, alone.stderr[-3000:]
    metrics = json.loads((tmp_path / "alone" / "metrics.json").read_text())
    assert metrics["model"] == "next_by_id" and metrics["overall"]["recall@5"] > 0.5  # the tiny data's rule

    plus = run_cli("run.py", [*TINY, "model=gloss_plus", "model.sources=[next_by_id,popularity]", "retriever=bm25",
                              "+model.parts.next_by_id.popularity_weight=0.5", searchpath,
                              f"hydra.run.dir={tmp_path / 'plus'}"], tiny_root, tmp_path / "c")
    assert plus.returncode == 0, plus.stderr[-3000:]
    log = (tmp_path / "plus" / "run.log").read_text()
    assert "fitting part held_out/next_by_id (NextById)" in log and "fitting part full/next_by_id (NextById)" in log
    saved = (tmp_path / "plus" / "config_resolved.yaml").read_text()
    assert "popularity_weight: 0.5" in saved and "exclude_seen: true" in saved  # its settings + the composite's
    assert json.loads((tmp_path / "plus" / "metrics.json").read_text())["overall"]["recall@10"] > 0.3
