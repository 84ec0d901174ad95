from pathlib import Path

import pytest

from gloss.data.readers import read_offline, read_official
from gloss.errors import DataFormatError, GlossError


def test_reads_offline_format(tiny_root: Path):
    raw = read_offline(tiny_root / "amazon2014" / "tiny")
    assert len(raw.sequences) == 60
    assert raw.titles["B99999"] == ""
    assert raw.skipped == {"user_sequence.txt": 0, "item_titles.tsv": 0}


def test_malformed_line_names_file_and_line(tiny_root: Path):
    path = tiny_root / "amazon2014" / "tiny" / "user_sequence.txt"
    lines = path.read_text().splitlines()
    lines.insert(4, "LONELY_USER")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as e:
        read_offline(path.parent)
    assert str(e.value).startswith(f"{path}:5: ")


def test_lenient_mode_skips_and_counts(tiny_root: Path):
    path = tiny_root / "amazon2014" / "tiny" / "item_titles.tsv"
    path.write_text(path.read_text() + "broken line without tab\nB1\tx\ty\n")
    raw = read_offline(path.parent, strict=False)
    assert raw.skipped["item_titles.tsv"] == 2


def test_missing_files_message(tmp_path: Path):
    with pytest.raises(GlossError, match="GLOSS_DATA_DIR"):
        read_offline(tmp_path / "nowhere")


def test_official_format(tmp_path: Path):
    import gzip, json

    reviews = [("u1", "a", 3), ("u1", "b", 1), ("u1", "c", 2), ("u2", "a", 5)]
    with gzip.open(tmp_path / "reviews_Beauty_5.json.gz", "wt") as f:
        for u, i, t in reviews:
            f.write(json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t, "overall": 5.0}) + "\n")
    with gzip.open(tmp_path / "meta_Beauty.json.gz", "wt") as f:
        f.write(str({"asin": "a", "title": "Alpha"}) + "\n")
        f.write(str({"asin": "b", "title": "Beta's \"best\""}) + "\n")
        f.write(str({"asin": "c"}) + "\n")
        f.write("{'asin': 'z', oops\n")
    with pytest.raises(DataFormatError, match=r"meta_Beauty.json.gz:4: "):
        read_official(tmp_path, "Beauty")
    raw = read_official(tmp_path, "Beauty", strict=False)
    assert raw.sequences["u1"] == ["b", "c", "a"]  # chronological
    assert raw.titles == {"a": "Alpha", "b": "Beta's \"best\"", "c": ""}
    assert raw.skipped["meta_Beauty.json.gz"] == 1
