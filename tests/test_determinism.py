"""Same config + same environment + same thread count -> identical results (issue 27 item 2): the GLoSS+ ranker's
tree count and predictions, and metrics.json of one run per model family on the tiny dataset."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY, run_cli
from tests.models.conftest import rule_data
from tests.models.test_gloss_plus import COOC, POPULARITY, fit, gloss_plus


@pytest.mark.slow
def test_the_ranker_tree_count_and_predictions_do_not_change_between_fits():
    data = rule_data(n_users=200, length=6, seed=3)
    test = data.split.test_examples()
    histories = data.split.histories(test)
    fits = [fit(gloss_plus(["popularity", "cooc"], {"popularity": POPULARITY, "cooc": COOC}, depth=10,
                           ranker={"n_estimators": 300, "min_child_samples": 5}, early_stopping_rounds=10,
                           ranker_folds=3, fallback=False), data) for _ in range(2)]
    trees = [f.ranker.booster_.num_trees() for f in fits]
    assert trees[0] == trees[1] < 300  # chosen by cross-validation, the same both times
    first, second = (f.recommend(histories, 10) for f in fits)
    assert np.array_equal(first.items, second.items) and np.array_equal(first.scores, second.scores)


FAMILIES = {  # model family -> run.py overrides on the tiny dataset (cheap settings)
    "cooc": ["model=cooc"],
    "lis": ["model=lis", "retriever=bm25"],
    "tgh": ["model=tgh", "retriever=bm25", "model.within=count"],
    "sasrec": ["model=sasrec", "model.hidden=16", "trainer.max_epochs=2"],
    "gloss_plus": ["model=gloss_plus", "retriever=bm25", "model.sources=[cooc,lis,popularity]",
                   "model.ranker.n_estimators=30", "model.early_stopping_rounds=5"],
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_runs_write_the_same_metrics(family: str, tiny_root: Path, tmp_path: Path):
    """Two runs, each in its own folder and cache (nothing reused), byte-identical metrics.json (val and test)."""
    outputs = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        proc = run_cli("run.py", [*TINY, *FAMILIES[family], "eval.val=true", f"hydra.run.dir={out / 'run'}"],
                       tiny_root, out / "cache", env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append([(out / "run" / name).read_bytes() for name in ("metrics.json", "metrics_val.json")])
    assert outputs[0] == outputs[1]
