"""The remaining bad-input edges of issue 26 ("a run folder is data, never code ... the remaining edges of bad
input"): each mistake is one line naming what is wrong, exit 2, before any data is loaded."""
from __future__ import annotations

import json
import logging
import os
import re
import signal
from pathlib import Path

import pytest

import gloss.eval.outputs
import gloss.models.cooc
from gloss.cli import one_line_errors
from gloss.data.readers import read_offline, read_official
from gloss.errors import DataFormatError, GlossError
from gloss.experiment import run_experiment
from gloss.report import main as report_main, write_report
from tests.conftest import TINY, run_cli
from tests.reliability.test_run_folder import tiny_cfg
from tests.reliability.test_settings_checked import checked
from tests.test_report import table_rows, write_metrics


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


# --- unwritable outputs ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_unwritable_run_folder_is_one_line(tiny_root, tmp_path):
    (tmp_path / "f").write_text("a file")
    for run_dir in (tmp_path / "f" / "run", "/dev/full"):
        proc = run_cli("run.py", [*TINY, "model=popularity", f"hydra.run.dir={run_dir}"], tiny_root, tmp_path / "c",
                       timeout=120)
        assert str(run_dir) in one_line(proc)
    assert (tmp_path / "f").read_text() == "a file"


def test_an_unwritable_report_out_is_one_line_naming_it(tmp_path, capsys):
    write_metrics(tmp_path / "runs" / "a", "beauty", "cooc", "none", 0.07)
    (tmp_path / "f").write_text("a file")
    for out in (tmp_path / "f" / "out", tmp_path / "f", Path("/dev/full")):
        with pytest.raises(SystemExit) as stop:
            report_main([str(tmp_path / "runs"), "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: --out") and str(out) in err[0], err


# --- gloss.report: labels and values -----------------------------------------------------------------------------

def test_a_label_with_a_pipe_or_a_line_break_keeps_the_report_tables_whole(tmp_path):
    root = tmp_path / "runs"
    write_metrics(root / "a", "beauty", "co|oc", "none", 0.07)
    write_metrics(root / "b", "beauty", "lis\nx", "bm\r25", 0.05)
    write_metrics(root / "c", "be|au\nty", "popularity", "none", 0.01)
    md, _ = write_report(root)
    for block in md.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows:  # every row of a table is one line with the header's number of unescaped cells
            assert len(rows) == len(block.splitlines()), block
            assert len({len(re.split(r"(?<!\\)\|", row)) for row in rows}) == 1, block
    assert not any(line.startswith(("x", "25", "ty")) for line in md.splitlines())


@pytest.mark.parametrize("value", [1e308, 1.5, -0.1])
def test_a_metric_outside_0_1_is_skipped_with_a_line_naming_the_file(tmp_path, value):
    root = tmp_path / "runs"
    write_metrics(root / "good", "beauty", "cooc", "none", 0.07)
    path = write_metrics(root / "bad", "beauty", "huge", "none", 0.07)
    summary = json.loads(path.read_text())
    summary["overall"]["recall@5"] = value
    path.write_text(json.dumps(summary))
    md, notes = write_report(root)
    assert "huge" not in table_rows(md)
    assert any(str(path) in n and "recall@5" in n and "[0, 1]" in n for n in notes), notes


# --- SIGTERM outside training ------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["fit", "write"])
def test_sigterm_outside_training_says_so_releases_the_folder_and_leaves_no_temp_file(tiny_root, tmp_path, monkeypatch,
                                                                                     capsys, where):
    """SIGTERM during a heuristic's fit, or while a result file is being written: one stderr line, a run.log note,
    run.lock and the temp file removed, exit 143 (128 + SIGTERM); the next run finishes the folder."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = tiny_cfg(tiny_root, tmp_path / "c", "model=cooc")
    terminate = lambda *_: os.kill(os.getpid(), signal.SIGTERM)  # noqa: E731
    if where == "fit":
        monkeypatch.setattr(gloss.models.cooc.CoOccurrence, "fit", terminate)
    else:
        monkeypatch.setattr(gloss.eval.outputs.os, "fsync", terminate)
    log_file = logging.FileHandler(run_dir / "run.log")
    logging.getLogger().addHandler(log_file)
    unhandled = lambda *_: pytest.fail("SIGTERM reached the handler outside the run")  # noqa: E731
    previous = signal.signal(signal.SIGTERM, unhandled)  # not the default: that would end pytest
    try:
        with pytest.raises(SystemExit) as stop:
            one_line_errors(lambda: run_experiment(cfg, run_dir))()
        assert signal.getsignal(signal.SIGTERM) is unhandled
    finally:
        signal.signal(signal.SIGTERM, previous)
        logging.getLogger().removeHandler(log_file)
        log_file.close()
    assert stop.value.code == 143
    assert "stopped by SIGTERM" in capsys.readouterr().err
    assert "stopped by SIGTERM" in (run_dir / "run.log").read_text()
    assert not (run_dir / "run.lock").exists() and not list(run_dir.rglob("*.tmp"))
    assert not (run_dir / "metrics.json").exists()
    monkeypatch.undo()
    run_experiment(cfg, run_dir)
    assert (run_dir / "metrics.json").is_file()


# --- cache entries are data --------------------------------------------------------------------------------------

class Payload:
    """Unpickling this runs code: it creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def load_tiny(tiny_root: Path, cache: Path):
    from hydra.utils import instantiate

    return instantiate(tiny_cfg(tiny_root, cache, "model=cooc").dataset)


@pytest.mark.parametrize("planted", ["payload", "wrong_object"])
def test_a_planted_or_wrong_dataset_cache_entry_never_runs_and_is_rebuilt(tiny_root, tmp_path, planted):
    import pickle

    built = load_tiny(tiny_root, tmp_path / "c")
    (entry,) = (tmp_path / "c" / "data").glob("*.pkl")
    marker = tmp_path / "marker"
    entry.write_bytes(pickle.dumps(Payload(marker) if planted == "payload" else {"not": "GlossData"}))
    again = load_tiny(tiny_root, tmp_path / "c")
    assert not marker.exists()
    assert again.catalog.item_ids == built.catalog.item_ids and again.split.user_ids == built.split.user_ids
    assert pickle.loads(entry.read_bytes()).catalog.item_ids == built.catalog.item_ids  # rebuilt in place


# --- readers -----------------------------------------------------------------------------------------------------

def offline(folder: Path, sequences: bytes, titles: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_sequence.txt").write_bytes(sequences)
    (folder / "item_titles.tsv").write_bytes(titles)
    return folder


SEQUENCES = b"U1 A B C\nU2 B C A\n"
TITLES = b"asin\ttitle\nA\talpha\nB\tbeta\nC\tgamma\n"


def test_a_bom_is_not_part_of_the_first_user_id_or_the_header(tmp_path):
    raw = read_offline(offline(tmp_path, b"\xef\xbb\xbf" + SEQUENCES, b"\xef\xbb\xbf" + TITLES))
    assert list(raw.sequences) == ["U1", "U2"] and raw.titles["A"] == "alpha"


def test_whitespace_only_lines_are_skipped_in_both_files(tmp_path):
    raw = read_offline(offline(tmp_path, b"U1 A B C\n \t \n\nU2 B C A\n",
                               b"asin\ttitle\nA\talpha\n  \t\n\nB\tbeta\nC\tgamma\n"))
    assert list(raw.sequences) == ["U1", "U2"] and set(raw.titles) == {"A", "B", "C"}
    assert raw.skipped == {"user_sequence.txt": 0, "item_titles.tsv": 0}


def test_a_bare_cr_in_a_title_does_not_shift_line_numbers(tmp_path):
    folder = offline(tmp_path, SEQUENCES, b"asin\ttitle\nA\tal\rpha\nB\tbeta\nC\tgamma\nD\n")
    with pytest.raises(DataFormatError, match=r"item_titles.tsv:5: "):
        read_offline(folder)
    raw = read_offline(offline(tmp_path, SEQUENCES, TITLES.replace(b"\n", b"\r\n")))  # CRLF files still read
    assert raw.titles == {"A": "alpha", "B": "beta", "C": "gamma"}


@pytest.mark.parametrize("which", ["user_sequence.txt", "item_titles.tsv"])
def test_a_huge_line_is_refused_by_file_and_line_without_holding_it(tmp_path, monkeypatch, which):
    import gloss.data.readers

    monkeypatch.setattr(gloss.data.readers, "MAX_LINE_CHARS", 1000)
    long = b"U3 " + b"A " * 2000 + b"\n" if which == "user_sequence.txt" else b"A\t" + b"x" * 5000 + b"\n"
    sequences = SEQUENCES + long if which == "user_sequence.txt" else SEQUENCES
    titles = TITLES + long if which == "item_titles.tsv" else TITLES
    folder = offline(tmp_path, sequences + b"U4 A B\n", titles)
    line = 3 if which == "user_sequence.txt" else 5
    with pytest.raises(DataFormatError, match=rf"{which}:{line}: .*longer than 1,000 characters"):
        read_offline(folder)
    raw = read_offline(folder, strict=False)
    assert raw.skipped[which] == 1
    assert "U4" in raw.sequences and "U3" not in raw.sequences


@pytest.mark.parametrize("review", [
    {"reviewerID": "u9", "asin": "a", "unixReviewTime": 10 ** 400},
    {"reviewerID": "u9", "asin": "a", "unixReviewTime": 1e400},
    {"reviewerID": ["u9"], "asin": "a", "unixReviewTime": 4},
    {"reviewerID": "u9", "asin": {"x": 1}, "unixReviewTime": 4},
    {"reviewerID": "u9", "asin": "a", "unixReviewTime": "soon"},
    {"reviewerID": "u9", "asin": "a", "unixReviewTime": True},
])
def test_the_official_reader_names_a_json_line_of_wrong_field_types_and_strict_false_skips_it(tmp_path, review):
    import gzip

    with gzip.open(tmp_path / "reviews_Beauty_5.json.gz", "wt") as f:
        for u, i, t in [("u1", "a", 3), ("u1", "b", 1)]:
            f.write(json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t}) + "\n")
        f.write(json.dumps(review).replace("Infinity", "1e400") + "\n")
    with gzip.open(tmp_path / "meta_Beauty.json.gz", "wt") as f:
        f.write(str({"asin": "a", "title": "Alpha"}) + "\n" + str({"asin": ["b"], "title": "B"}) + "\n")
        f.write(str({"asin": "b", "title": "Beta"}) + "\n")
    with pytest.raises(DataFormatError, match=r"reviews_Beauty_5.json.gz:3: "):
        read_official(tmp_path, "Beauty")
    raw = read_official(tmp_path, "Beauty", strict=False)
    assert raw.sequences == {"u1": ["b", "a"]} and raw.titles == {"a": "Alpha", "b": "Beta"}
    assert raw.skipped == {"reviews_Beauty_5.json.gz": 1, "meta_Beauty.json.gz": 1}


# --- Optuna sweeps -----------------------------------------------------------------------------------------------

def test_the_study_is_named_after_dataset_name_not_the_config_file():
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for search in ("cooc_optuna", "sasrec_optuna"):
            cfg = compose("config", overrides=[f"hparams_search={search}", "dataset.name=other"],
                          return_hydra_config=True)
            assert cfg.hydra.sweeper.study_name == f"{search.split('_')[0]}_other"


def sweep_cli(tiny_root: Path, tmp_path: Path, *args: str, background: bool = False):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    return run_cli("run.py", ["-m", *TINY, "dataset.val_fraction=0.5", f"hydra.sweeper.storage={storage}",
                              f"hydra.sweep.dir={tmp_path / 'sweep'}", *args], tiny_root, tmp_path / "c",
                   timeout=600, background=background)


def study_states(tmp_path: Path, name: str) -> list[str]:
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    return [t.state.name for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Deprecated API features detected")
def test_a_stored_study_resumes_into_the_same_sweep_folder(tiny_root, tmp_path):
    for _ in range(2):
        proc = sweep_cli(tiny_root, tmp_path, "hparams_search=cooc_optuna", "hydra.sweeper.n_trials=2")
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert study_states(tmp_path, "cooc_tiny") == ["COMPLETE"] * 4
    assert all((tmp_path / "sweep" / str(n) / "metrics.json").is_file() for n in range(4))  # folder = trial number


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Deprecated API features detected")
def test_an_interrupted_sweep_marks_its_running_trial_failed_and_prints_no_traceback(tiny_root, tmp_path):
    import time

    proc = sweep_cli(tiny_root, tmp_path, "hparams_search=sasrec_optuna", "hydra.sweeper.n_trials=3",
                     "trainer.max_epochs=100000", "callbacks.early_stopping=null", background=True)
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "sweep" / "0" / "checkpoints" / "last.ckpt").exists() and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "Traceback" not in err and "stopped by SIGTERM" in err, err[-3000:]
    assert study_states(tmp_path, "sasrec_tiny") == ["FAIL"]


def test_ctrl_c_outside_training_is_one_line_exit_130_and_releases_the_folder(tiny_root, tmp_path, monkeypatch, capsys):
    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(gloss.models.cooc.CoOccurrence, "fit", interrupted)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(SystemExit) as stop:
        one_line_errors(lambda: run_experiment(tiny_cfg(tiny_root, tmp_path / "c", "model=cooc"), run_dir))()
    assert stop.value.code == 130 and capsys.readouterr().err.strip() == "error: interrupted (Ctrl-C)"
    assert not (run_dir / "run.lock").exists()


def test_a_full_disk_while_writing_results_is_one_line_and_leaves_no_temp_file(tiny_root, tmp_path, monkeypatch,
                                                                               capsys):
    import errno

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gloss.eval.outputs.os, "fsync", full)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(SystemExit) as stop:
        one_line_errors(lambda: run_experiment(tiny_cfg(tiny_root, tmp_path / "c", "model=cooc"), run_dir))()
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "No space left on device" in err[0], err
    assert not (run_dir / "run.lock").exists() and not list(run_dir.rglob("*.tmp"))
