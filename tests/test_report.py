"""gloss.report: rows, highlighting, duplicates (newest wins), CSV, the segment plot and the per-dataset tables with the
published results, from synthetic metrics.json files."""
import csv
import json
import os
from pathlib import Path

import pytest

from gloss.report import main, write_report

KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr")


def write_metrics(folder: Path, dataset: str, model: str, retriever: str, r5: float, mtime: float | None = None) -> Path:
    def block(scale: float) -> dict:
        return {"recall@5": r5 * scale, "ndcg@5": r5 * scale / 2, "recall@10": r5 * scale * 1.5, "ndcg@10": r5 * scale * 0.6, "mrr": r5 / 3}

    summary = {
        "dataset": dataset,
        "model": model,
        "retriever": retriever,
        "split": "test",
        "n_users": 100,
        "overall": block(1.0),
        "segments": {s: {**block(f), "n_users": n} for s, f, n in (("cold", 0.8, 30), ("regular", 1.0, 60), ("power", 1.4, 10))},
    }
    folder.mkdir(parents=True)
    path = folder / "metrics.json"
    path.write_text(json.dumps(summary))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "multirun"
    write_metrics(root / "0_lis_dense", "beauty", "lis", "dense", 0.038)
    write_metrics(root / "1_lis_bm25", "beauty", "lis", "bm25", 0.044)
    write_metrics(root / "2_cooc", "beauty", "cooc", "none", 0.069)
    write_metrics(root / "3_pop", "beauty", "popularity", "none", 0.005)
    write_metrics(root / "4_cooc_old", "beauty", "cooc", "none", 0.010, mtime=1_000_000)  # older duplicate: left out
    write_metrics(root / "5_lis_dense_toys", "toys", "lis", "dense", 0.050)
    write_metrics(root / "1_lis_bm25" / "wandb" / "offline-run-x" / "files", "beauty", "lis", "bm25", 0.9)  # W&B's copy: ignored
    return root


def table_lines(md: str, heading: str | None = None) -> list[list[str]]:
    """The cells of each row of the grid (the first table), or of the table under `## <heading>`; header row left out."""
    lines = md.splitlines()
    if heading is not None:
        lines = lines[lines.index(f"## {heading}") :]
    start = next(i for i, line in enumerate(lines) if line.startswith("| model"))
    rows = []
    for line in lines[start + 2 :]:  # after the header and the |---| line
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def table_rows(md: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for cells in table_lines(md)}


def test_table_rows_highlight_and_duplicates(sweep: Path):
    md, notes = write_report(sweep)
    rows = table_rows(md)
    assert set(rows) == {"lis+dense", "lis+bm25", "cooc", "popularity"}  # retriever "none" -> just the model name
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert "beauty Recall@5" in header and "toys NDCG@10" in header
    assert header.index("beauty") < header.index("toys")  # the paper's dataset order
    beauty_r5 = {label: cells[0] for label, cells in rows.items()}
    assert beauty_r5["cooc"] == "**0.0690**"  # the newer cooc run, bold as best
    assert beauty_r5["lis+bm25"] == "<u>0.0440</u>"  # second best underlined
    assert beauty_r5["lis+dense"] == "0.0380" and beauty_r5["popularity"] == "0.0050"
    assert rows["cooc"][4] == "–"  # cooc has no toys run
    assert rows["lis+dense"][4] == "**0.0500**"  # sole value in its column is the best
    assert len(notes) == 1 and "4_cooc_old" in notes[0] and "left out" in notes[0]
    assert "Duplicate runs" in (sweep / "report.md").read_text()


def test_csv_and_plot(sweep: Path):
    write_report(sweep)
    with open(sweep / "report.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["model"] for r in table] == ["cooc", "lis+bm25", "lis+dense", "popularity"]
    assert float(next(r for r in table if r["model"] == "cooc")["beauty/recall@5"]) == pytest.approx(0.069)
    assert next(r for r in table if r["model"] == "cooc")["toys/recall@5"] == ""
    png = (sweep / "segments.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_cli_out_folder_and_errors(sweep: Path, tmp_path: Path, capsys):
    main([str(sweep), "--out", str(tmp_path / "report")])
    assert (tmp_path / "report" / "report.md").is_file() and (tmp_path / "report" / "segments.png").is_file()
    assert "lis+bm25" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "empty")])
    assert e.value.code == 2
    (sweep / "bad").mkdir()
    (sweep / "bad" / "metrics.json").write_text("{\n  oops")
    main([str(sweep)])  # a bad file is skipped with a warning; the report is built from the others
    out, err = capsys.readouterr()
    assert "warning: skipped" in err and "bad/metrics.json:2: not valid JSON" in err and "| lis+bm25 |" in out


def test_val_split_reads_metrics_val(sweep: Path):
    for sub in ("0_lis_dense", "2_cooc"):
        summary = json.loads((sweep / sub / "metrics.json").read_text())
        summary.update(split="val", overall={k: v / 2 for k, v in summary["overall"].items()})
        (sweep / sub / "metrics_val.json").write_text(json.dumps(summary))
    md, _ = write_report(sweep, split="val")
    assert set(table_rows(md)) == {"lis+dense", "cooc"}
    assert table_rows(md)["cooc"][0] == "**0.0345**"
    assert (sweep / "report_val.csv").is_file() and (sweep / "segments_val.png").is_file()


def test_many_models_plot_horizontally(tmp_path: Path):
    for i in range(10):  # more than MAX_VERTICAL models: one bar group per model
        write_metrics(tmp_path / f"run{i}", "beauty", f"model{i}", "bm25", 0.01 * (i + 1))
    md, notes = write_report(tmp_path)
    assert len(table_rows(md)) == 10 and not notes
    assert table_rows(md)["model9+bm25"][0] == "**0.1000**" and table_rows(md)["model8+bm25"][0] == "<u>0.0900</u>"
    assert (tmp_path / "segments.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BEAUTY_PUBLISHED = ["BSARec", "FMLP-Rec (CE)", "SASRec (CE, tuned)", "GLoSS-8B", "GLoSS-3B", "GLoSS-1B", "SASRec (BCE, in GLoSS)"]


def test_dataset_tables_with_published_results(sweep: Path):
    md, _ = write_report(sweep)
    assert md.index("| model | beauty Recall@5") < md.index("## beauty") < md.index("## toys")  # after the grid
    assert "## sports" not in md  # published results alone make no table
    beauty = table_lines(md, "beauty")
    assert [cells[0] for cells in beauty] == [  # runs and beauty's published rows only, by R@5
        "BSARec", "FMLP-Rec (CE)", "SASRec (CE, tuned)", "cooc", "GLoSS-8B", "GLoSS-3B", "GLoSS-1B", "lis+bm25",
        "SASRec (BCE, in GLoSS)", "lis+dense", "popularity",
    ]  # fmt: skip
    rows = {cells[0]: cells[1:] for cells in beauty}
    assert "| model | source | R@5 | N@5 | R@10 | N@10 | cold R@5 | regular R@5 | power R@5 |" in md
    assert rows["BSARec"] == ["Shin et al. AAAI 2024", "**0.0736**", "**0.0523**", "–", "–", "–", "–", "–"]
    assert rows["FMLP-Rec (CE)"][:3] == ["Xu et al. 2024, arXiv 2408.14238", "<u>0.0717</u>", "<u>0.0509</u>"]
    assert rows["SASRec (BCE, in GLoSS)"][1:3] == ["0.0387", "–"]
    # cooc: R@5 0.069, N@5 0.0345, R@10 0.1035, N@10 0.0414; segments x0.8, x1.0, x1.4 -- best where published is unknown
    assert rows["cooc"] == ["gloss (2_cooc)", "0.0690", "0.0345", "**0.1035**", "**0.0414**", "**0.0552**", "**0.0690**", "**0.0966**"]
    assert rows["lis+bm25"][:4] == ["gloss (1_lis_bm25)", "0.0440", "0.0220", "<u>0.0660</u>"]
    toys = table_lines(md, "toys")
    assert [cells[0] for cells in toys] == ["BSARec", "GLoSS-3B", "GLoSS-1B", "lis+dense", "GLoSS-8B"]  # no R@5 last
    toys_rows = {cells[0]: cells[1:] for cells in toys}
    assert toys_rows["GLoSS-8B"][1:3] == ["–", "**0.0529**"]
    assert toys_rows["BSARec"][1:3] == ["**0.0805**", "–"]
    assert toys_rows["lis+dense"] == ["gloss (5_lis_dense_toys)", "0.0500", "0.0250", "**0.0750**", "**0.0300**", "**0.0400**", "**0.0500**", "**0.0700**"]
    assert md == (sweep / "report.md").read_text()

    with open(sweep / "report_datasets.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["dataset", "model", "source", "recall@5", "ndcg@5", "recall@10", "ndcg@10",
                              "cold/recall@5", "regular/recall@5", "power/recall@5"]  # fmt: skip
    assert [(r["dataset"], r["model"]) for r in table] == [("beauty", c[0]) for c in beauty] + [("toys", c[0]) for c in toys]
    cooc = next(r for r in table if r["model"] == "cooc")
    assert cooc["source"] == "gloss (2_cooc)" and float(cooc["power/recall@5"]) == pytest.approx(0.0966)
    gloss8 = next(r for r in table if r["dataset"] == "toys" and r["model"] == "GLoSS-8B")
    assert gloss8["source"] == "Acharya et al. 2025" and gloss8["recall@5"] == "" and float(gloss8["ndcg@5"]) == 0.0529


def test_dataset_tables_no_published_and_out_folder(sweep: Path, tmp_path: Path, capsys):
    summary = json.loads((sweep / "0_lis_dense" / "metrics.json").read_text())
    summary["segments"]["power"].update({"n_users": 0, "recall@5": None})  # an empty segment: no value
    (sweep / "0_lis_dense" / "metrics.json").write_text(json.dumps(summary))
    main([str(sweep), "--out", str(tmp_path / "report"), "--no-published"])
    md = capsys.readouterr().out
    beauty = table_lines(md, "beauty")
    assert [cells[0] for cells in beauty] == ["cooc", "lis+bm25", "lis+dense", "popularity"]
    rows = {cells[0]: cells[1:] for cells in beauty}
    assert rows["cooc"][:2] == ["gloss (../multirun/2_cooc)", "**0.0690**"]  # relative to the report's folder
    assert rows["lis+dense"][-1] == "–"
    assert [cells[0] for cells in table_lines(md, "toys")] == ["lis+dense"]
    assert not any(name in md for name in ("BSARec", "GLoSS-3B", "Acharya"))
    with open(tmp_path / "report" / "report_datasets.csv") as f:
        assert [r["model"] for r in csv.DictReader(f)] == ["cooc", "lis+bm25", "lis+dense", "popularity", "lis+dense"]


def test_dataset_tables_val_split_has_no_published(sweep: Path):
    for sub in ("0_lis_dense", "2_cooc"):
        summary = json.loads((sweep / sub / "metrics.json").read_text())
        summary.update(split="val", overall={k: v / 2 for k, v in summary["overall"].items()})
        (sweep / sub / "metrics_val.json").write_text(json.dumps(summary))
    md, _ = write_report(sweep, split="val")
    beauty = table_lines(md, "beauty")
    assert [(cells[0], cells[1], cells[2]) for cells in beauty] == [
        ("cooc", "gloss (2_cooc)", "**0.0345**"), ("lis+dense", "gloss (0_lis_dense)", "<u>0.0190</u>")
    ]  # fmt: skip
    assert "BSARec" not in md and "Acharya" not in md
    with open(sweep / "report_datasets_val.csv") as f:
        assert [r["model"] for r in csv.DictReader(f)] == ["cooc", "lis+dense"]


# --- environment.json: the runs of one table differ --------------------------------------------------------------
def plant_environment(folder: Path, **changes) -> None:
    """A run folder's environment.json: this process's record with `changes` merged into its parts."""
    from gloss.environment import environment

    env = environment({"amazon2014/beauty/user_sequence.txt": "1" * 64})
    env["git"] = {"commit": "abc1234" + "0" * 33, "dirty": False}
    for key, value in changes.items():
        env[key] = {**env[key], **value} if isinstance(env.get(key), dict) else value
    (folder / "environment.json").write_text(json.dumps(env))


def environment_section(md: str) -> list[str]:
    """The notes under "Runs differ in environment", or [] when there is no such section."""
    lines = md.splitlines()
    if ENV_HEADING not in lines:
        return []
    notes = lines[lines.index(ENV_HEADING) + 2 :]
    return [line[2:] for line in notes[: next(i for i, line in enumerate(notes) if not line.startswith("- "))]]


ENV_HEADING = "Runs differ in environment (environment.json):"


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def test_report_says_nothing_when_the_runs_environments_agree(sweep: Path):
    for sub in ("0_lis_dense", "1_lis_bm25", "2_cooc", "3_pop", "5_lis_dense_toys"):
        plant_environment(sweep / sub)
    md, notes = write_report(sweep)
    assert environment_section(md) == [] and ENV_HEADING not in md
    assert not any("environment" in n for n in notes)


def test_report_notes_each_environment_field_the_runs_differ_in(sweep: Path, capsys, monkeypatch):
    from gloss.environment import THREAD_VARIABLES, packages

    for name in THREAD_VARIABLES[1:]:  # the planted difference is OMP_NUM_THREADS alone, whatever the caller's shell sets
        monkeypatch.delenv(name, raising=False)

    numpy = packages()["numpy"]
    plant_environment(sweep / "0_lis_dense")
    plant_environment(sweep / "1_lis_bm25", packages={"numpy": "0.0.1"})
    plant_environment(sweep / "2_cooc", git={"commit": "def5678" + "0" * 33, "dirty": True},
                      cpu={"env": {"OMP_NUM_THREADS": "4"}},
                      data_files={"amazon2014/beauty/user_sequence.txt": "2" * 64})
    plant_environment(sweep / "3_pop")
    resumed = json.loads((sweep / "3_pop" / "environment.json").read_text())
    resumed["cpu"]["torch_threads"] = 99
    resume = sweep / "3_pop" / "environment.2026-01-01_00-00-00_000000.json"  # a resume's record: the newest
    resume.write_text(json.dumps(resumed))
    main([str(sweep)])
    out, err = capsys.readouterr()
    notes = environment_section((sweep / "report.md").read_text())
    assert environment_section(out) == notes
    assert notes == [  # the fields in a fixed order (git, threads, data files, packages), the largest group first
        "git commit abc1234 (3 runs) vs def5678 (1 run: 2_cooc)",
        "git tree clean (3 runs) vs dirty (1 run: 2_cooc)",
        f"torch threads {torch_threads()} (3 runs) vs 99 (1 run: 3_pop)",
        f"OMP_NUM_THREADS {os.environ.get('OMP_NUM_THREADS', 'unset')} (3 runs) vs 4 (1 run: 2_cooc)",
        "data amazon2014/beauty/user_sequence.txt 111111111111 (3 runs) vs 222222222222 (1 run: 2_cooc)",
        f"numpy {numpy} (3 runs) vs 0.0.1 (1 run: 1_lis_bm25)",
        "no environment.json (older run folders): 1 run (5_lis_dense_toys)",
    ]
    assert len(notes) == 7 and all(f"warning: runs differ in environment: {n}" in err for n in notes)


def test_an_unreadable_environment_json_is_named(tmp_path: Path):
    write_metrics(tmp_path / "a", "beauty", "cooc", "none", 0.05)
    write_metrics(tmp_path / "b", "beauty", "popularity", "none", 0.01)
    plant_environment(tmp_path / "a")
    (tmp_path / "b" / "environment.json").write_text("{")
    md, _ = write_report(tmp_path)
    (note,) = environment_section(md)
    assert note.startswith("unreadable environment.json: b (environment.json: Expecting")
