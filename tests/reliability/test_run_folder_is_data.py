"""A run folder someone else wrote is data, never code: eval.py / predict.py refuse a pickle planted in a weights
file or a `_target_` that is not a gloss class planted in config_resolved.yaml, and run nothing of it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from gloss.data import Catalog, GlossData, split_leave_one_out
from gloss.errors import GlossError
from gloss.run_folder import check_item_map, read_config, write_run_record
from tests.conftest import TINY, run_cli


class Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def planted_config(run_dir: Path, model: dict) -> None:
    path = run_dir / "config_resolved.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["model"] = model
    path.write_text(yaml.safe_dump(cfg))


@pytest.mark.parametrize("target", ["torch.load", "gloss.experiment.os.system", "os.system", "builtins.eval"])
def test_a_config_naming_anything_but_a_gloss_class_is_refused_before_it_is_built(tmp_path, target):
    (tmp_path / "config_resolved.yaml").write_text(yaml.safe_dump(
        {"dataset": {"_target_": "gloss.data.load_dataset"}, "model": {"_target_": target, "f": "x"}}))
    with pytest.raises(GlossError, match="may only name gloss classes"):
        read_config(tmp_path)


def test_nested_targets_are_checked_too(tmp_path):
    (tmp_path / "config_resolved.yaml").write_text(yaml.safe_dump(
        {"dataset": {"_target_": "gloss.data.load_dataset"},
         "model": {"_target_": "gloss.models.lis.LastItemSearch", "retriever": {"_target_": "torch.load", "f": "x"}}}))
    with pytest.raises(GlossError, match=r"model\.retriever\._target_"):
        read_config(tmp_path)


def test_a_pickle_planted_in_an_id_models_weights_is_refused_and_not_run(tmp_path):
    from tests.models.factory import make_model

    marker = tmp_path / "ran"
    torch.save({"n_items": 3, "hyper_parameters": Payload(marker), "state_dict": {}}, tmp_path / "model.ckpt")
    catalog = Catalog(["a", "b", "c"], ["a", "b", "c"])
    data = GlossData("t", catalog, split_leave_one_out(["u"], [[0, 1, 2]], val_fraction=0.0, seed=0), (1, 5))
    model = make_model("sasrec", hidden=8, blocks=1, heads=1, dropout=0.0, max_len=4)
    with pytest.raises(GlossError, match="refused"):
        model.build_for(data, 0, run_dir=tmp_path)
    assert not marker.exists()


def test_the_item_map_survives_titles_with_unicode_line_separators(tmp_path):
    titles = ["plain", "line\u2028separator", "form\x0cfeed", "next\x85line"]
    catalog = Catalog(["a", "b", "c", "d"], titles)
    data = GlossData("t", catalog, split_leave_one_out(["u"], [[0, 1, 2, 3]], val_fraction=0.0, seed=0), (1, 5))
    write_run_record(OmegaConf.create({"x": 1}), tmp_path, data, resuming=False)
    check_item_map(tmp_path, data)  # the same catalog: accepted


@pytest.mark.slow
def test_eval_and_predict_refuse_planted_code_in_a_run_folder_and_run_none_of_it(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("run.py", [*TINY, "model=sasrec", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"],
                   tiny_root, tmp_path / "c")
    assert proc.returncode == 0, proc.stderr[-3000:]
    items = [line.split("\t")[0] for line in (run_dir / "items.tsv").read_text().splitlines()]
    predict_args = [f"run_dir={run_dir}", f"history=[{items[0]},{items[1]}]"]

    marker = tmp_path / "ran"
    saved = torch.load(run_dir / "model.ckpt", weights_only=True)
    torch.save({**saved, "hyper_parameters": Payload(marker)}, run_dir / "model.ckpt")
    for script, args in (("eval.py", [f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'e1'}"]),
                         ("predict.py", predict_args)):
        proc = run_cli(script, args, tiny_root, tmp_path / "c")
        assert proc.returncode == 2 and "refused" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert not marker.exists()

    payload = tmp_path / "payload.pt"
    torch.save(Payload(marker), payload)
    planted_config(run_dir, {"_target_": "torch.load", "f": str(payload), "weights_only": False})
    for script, args in (("eval.py", [f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'e2'}"]),
                         ("predict.py", predict_args)):
        proc = run_cli(script, args, tiny_root, tmp_path / "c")
        assert proc.returncode == 2 and "refused" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert not marker.exists()
