"""Precomputed GLoSS generation files (structure, users=file), gloss.report on bad metrics.json files and several
folders, and results tables with empty segments."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from gloss.data import Catalog, GlossData, split_leave_one_out
from gloss.errors import GlossError
from gloss.eval import results_table
from gloss.report import main, write_report
from tests.models.factory import make_model, make_retriever
from tests.test_report import table_rows, write_metrics

TITLES = [f"{b} {k} {n} Ounce" for n, (b, k) in enumerate(
    [(b, k) for b in ("Essie", "OPI", "Maybelline", "Revlon") for k in ("Nail Polish", "Mascara", "Shampoo", "Lip Balm")])]


def tiny_data(n_users: int = 40) -> GlossData:
    rng = np.random.default_rng(0)
    seqs = [rng.choice(len(TITLES), size=int(rng.integers(3, 9)), replace=False).astype(np.int64) for _ in range(n_users)]
    split = split_leave_one_out([f"u{i}" for i in range(n_users)], seqs, val_fraction=0.1, seed=42)
    return GlossData("tiny", Catalog([f"i{i}" for i in range(len(TITLES))], TITLES), split, (5, 14))


def entry(data: GlossData, u: int, cut: int) -> dict:
    """A GLoSS generations entry for user u at `cut`, whose first generation is the target's exact title."""
    seq, ids = data.split.sequences[u], data.catalog.item_ids
    return {"reviewer_id": data.split.user_ids[u], "asin": ids[seq[cut]], "seen_asins": [ids[i] for i in seq[:cut]],
            "generated_sequences": [f"Title: {TITLES[seq[cut]]}", "Title: x"]}


# --- item 11: structure of a generations file -------------------------------------------------------------------

@pytest.mark.parametrize("mutate, where", [
    (lambda es: {"entries": es}, "expected a JSON list of entries"),
    (lambda es: ["u0"] + es, "entry 0: expected an object"),
    (lambda es: es[:1] + [{**es[1], "generated_sequences": "Title: abc"}], "entry 1: generated_sequences: expected a non-empty list of strings"),
    (lambda es: es[:2] + [{**es[2], "generated_sequences": []}], "entry 2: generated_sequences: expected a non-empty list of strings"),
    (lambda es: es[:1] + [{**es[1], "generated_sequences": ["Title: a", 3]}], "entry 1: generated_sequences: expected a non-empty list of strings"),
    (lambda es: es[:1] + [{**es[1], "seen_asins": "i1"}], "entry 1: seen_asins: expected a list of strings"),
    (lambda es: es[:1] + [{**es[1], "asin": 7}], "entry 1: asin: expected a string"),
    (lambda es: es[:1] + [{**es[1], "reviewer_id": None}], "entry 1: reviewer_id: expected a string"),
])
def test_malformed_generations_file_is_one_error(tmp_path: Path, mutate, where: str):
    data = tiny_data()
    entries = [entry(data, u, c) for u, c in data.split.examples("test")]
    path = tmp_path / "gen.json"
    path.write_text(json.dumps(mutate(entries)))
    with pytest.raises(GlossError) as e:
        make_model("precomputed", path=str(path), retriever=make_retriever("bm25")).fit(data)
    assert str(path) in str(e.value) and where in str(e.value)


def test_users_file_evaluates_exactly_the_files_examples(tmp_path: Path, caplog):
    """A GLoSS validation file: entries at cut len-2 for users who are not our validation users, plus entries that
    do not fit our data (skipped and counted)."""
    data = tiny_data()
    non_val = [u for u in range(len(data.split.user_ids)) if u not in set(data.split.val_users)][:5]
    wanted = np.array([(u, len(data.split.sequences[u]) - 2) for u in non_val])
    entries = [entry(data, u, c) for u, c in wanted]
    entries.append({**entries[0], "reviewer_id": "nobody"})  # unknown user
    entries.append({**entry(data, non_val[0], 2), "asin": "i999"})  # not the user's next item
    entries.append(entries[1])  # duplicate
    path = tmp_path / "val_generations.json"
    path.write_text(json.dumps(entries))
    model = make_model("precomputed", path=str(path), retriever=make_retriever("bm25"), users="file")
    with caplog.at_level(logging.INFO, logger="gloss"):
        model.fit(data)
    for split in ("val", "test"):
        assert model.examples_for(split, data).tolist() == wanted.tolist()
    log = caplog.text
    assert "5 of 8 entries matched" in log and "1 unknown user" in log and "1 seen_asins + asin do not match" in log
    assert "1 duplicate" in log
    ranking = model.recommend(data.split.histories(wanted), k=5)
    assert (ranking.items[:, 0] == data.split.targets(wanted)).all()


def test_users_file_with_no_match_and_bad_setting(tmp_path: Path):
    data = tiny_data()
    path = tmp_path / "gen.json"
    path.write_text(json.dumps([{**entry(data, 0, 1), "reviewer_id": "nobody"}]))
    with pytest.raises(GlossError, match="no entry .* matches dataset tiny"):
        make_model("precomputed", path=str(path), retriever=make_retriever("bm25"), users="file").fit(data)
    with pytest.raises(GlossError, match="model.users=everyone"):
        make_model("precomputed", path=str(path), retriever=make_retriever("bm25"), users="everyone")


def test_examples_for_defaults_to_the_split(tmp_path: Path):
    data = tiny_data()
    path = tmp_path / "gen.json"
    path.write_text(json.dumps([entry(data, u, c) for u, c in data.split.examples("test")]))
    model = make_model("precomputed", path=str(path), retriever=make_retriever("bm25"))
    model.fit(data)
    for split in ("val", "test"):
        assert model.examples_for(split, data).tolist() == data.split.examples(split).tolist()
        assert make_model("popularity").examples_for(split, data).tolist() == data.split.examples(split).tolist()


# --- item 12: gloss.report ---------------------------------------------------------------------------------------

def bad_files(root: Path) -> dict[str, str]:
    """Broken metrics.json files below root: folder -> what the warning must say."""
    cases = {
        "null": ("null", "not a JSON object"),
        "no_ndcg5": (lambda s: s["overall"].pop("ndcg@5"), "overall.ndcg@5: missing"),
        "text_value": (lambda s: s["overall"].update({"recall@10": "0.1"}), "overall.recall@10: expected a number"),
        "bad_json": ("{\n  oops", ":2: not valid JSON"),
    }
    for name, (change, _) in cases.items():
        path = write_metrics(root / name, "beauty", f"m_{name}", "none", 0.5)
        if isinstance(change, str):
            path.write_text(change)
        else:
            summary = json.loads(path.read_text())
            change(summary)
            path.write_text(json.dumps(summary))
    return {name: why for name, (_, why) in cases.items()}


def test_report_skips_bad_metrics_files(tmp_path: Path, capsys):
    root = tmp_path / "runs"
    write_metrics(root / "good", "beauty", "cooc", "none", 0.07)
    expected = bad_files(root)
    md, notes = write_report(root)
    assert set(table_rows(md)) == {"cooc"}
    for name, why in expected.items():
        assert any(f"{name}/metrics.json" in n and why in n for n in notes), (name, notes)
        assert f"{name}/metrics.json" in md
    main([str(root), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(expected) and "| cooc |" in out
    assert (tmp_path / "out" / "report.md").is_file()


def test_report_reads_several_folders(tmp_path: Path, capsys):
    write_metrics(tmp_path / "a" / "1", "beauty", "cooc", "none", 0.07)
    write_metrics(tmp_path / "b" / "1", "toys", "lis", "bm25", 0.05)
    main([str(tmp_path / "a"), str(tmp_path / "b")])
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == {"cooc", "lis+bm25"}
    assert (tmp_path / "a" / "report.md").is_file()  # default output: the first folder
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "a"), str(tmp_path / "missing")])
    assert e.value.code == 2 and "missing" in capsys.readouterr().err


# --- item 13: empty segments ---------------------------------------------------------------------------------------

def test_results_table_prints_dash_for_empty_segments():
    keys = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr")
    summary = {"n_users": 3, "overall": dict.fromkeys(keys, 0.5),
               "segments": {"cold": {**dict.fromkeys(keys, 0.5), "n_users": 3},
                            "regular": {**dict.fromkeys(keys, 0.0), "n_users": 0},
                            "power": {**dict.fromkeys(keys, None), "n_users": 0}}}
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[2:]] for line in results_table(summary).splitlines()}
    assert rows["cold"] == ["0.5000"] * 5
    assert rows["regular"] == ["–"] * 5 and rows["power"] == ["–"] * 5


def test_report_accepts_empty_segments_with_null_metrics(tmp_path: Path):
    path = write_metrics(tmp_path / "run", "beauty", "cooc", "none", 0.07)
    summary = json.loads(path.read_text())
    summary["segments"]["power"] = {**dict.fromkeys(summary["overall"], None), "n_users": 0}
    path.write_text(json.dumps(summary))
    md, notes = write_report(tmp_path)
    assert set(table_rows(md)) == {"cooc"} and not notes
    assert (tmp_path / "segments.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
