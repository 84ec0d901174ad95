"""The generic source (dataset.source=table) and its thin configs (table, movielens_1m/_20m/_25m, amazon2023):
formats, column mapping, text fields, ties, k-core, temporal split, caching, and one-line errors on bad input."""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gloss.data import load_dataset
from gloss.data.split import build_sequences, split_temporal
from gloss.data.table import Events, read_table_source
from gloss.errors import GlossError, user_error
from gloss.validation import validate_config
from tests.conftest import composed
from tests.data.fixtures import (N_ITEMS, item_title, write_amazon2023, write_movielens_1m, write_movielens_20m,
                                 write_table_csv)
from tests.data.test_digest import data_digest


def dataset(root: Path, cache: Path, *overrides: str):
    """The dataset a run with these overrides builds (validated first, as run.py does)."""
    cfg = composed(*overrides, f"paths.data_dir={root}", f"paths.cache_dir={cache}", "model=cooc")
    validate_config(cfg)
    try:
        return instantiate(cfg.dataset)
    except Exception as e:  # Hydra wraps the GlossError; run.py prints the GlossError (gloss.cli)
        raise user_error(e) or e


def table(root: Path, interactions: dict, items: dict | None = None, **keys):
    """load_dataset on a table source with the table.yaml defaults under these node values."""
    base = {"format": None, "separator": None, "encoding": "utf-8", "header": True, "columns": None, "quote_char": '"'}
    inter = {**base, "file": "interactions.csv", "user": "user", "item": "item", "timestamp": "timestamp",
             "timestamp_unit": "s", **interactions}
    its = None if items is None else {**base, "file": "items.csv", "item": "item", "text": ["title"], "join": " ",
                                      **items}
    keys = {"folder": ".", "power_min_length": None, **keys}
    return load_dataset("t", str(root), str(root / "_cache"), source="table", interactions=inter, items=its, **keys)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- the shipped configs read their layouts ---------------------------------------------------------------------------
def test_table_config_reads_a_csv(tmp_path: Path):
    data = dataset(write_table_csv(tmp_path), tmp_path / "c", "dataset=table", "dataset.name=shop")
    assert data.name == "shop" and len(data.split.user_ids) == 40
    assert "9999" not in data.catalog.item_ids  # no title: dropped with its interaction
    assert set(data.catalog.item_ids) == {f"{i:04d}" for i in range(N_ITEMS)}  # ids stay text: leading zeros kept
    i = data.catalog.item_ids.index("0007")
    assert data.catalog.titles[i] == f"{item_title(7)}, deluxe"  # a quoted field with a comma


def test_movielens_1m_double_colon_latin1(tmp_path: Path):
    data = dataset(write_movielens_1m(tmp_path), tmp_path / "c", "dataset=movielens_1m")
    assert data.name == "ml-1m" and len(data.split.user_ids) == 40 and len(data.catalog) == N_ITEMS
    title = data.catalog.titles[data.catalog.item_ids.index("8")]  # movie 8 = item 7: a title with "é", '"' and ':'
    assert title == f'Café "{item_title(7)}": the movie (1997)'


def test_movielens_20m_and_25m_csv(tmp_path: Path):
    write_movielens_20m(tmp_path)
    write_movielens_20m(tmp_path, "ml-25m")
    m20 = dataset(tmp_path, tmp_path / "c", "dataset=movielens_20m")
    m25 = dataset(tmp_path, tmp_path / "c", "dataset=movielens_25m")
    assert m20.catalog.titles[m20.catalog.item_ids.index("1")] == f"{item_title(0)}, The (1999)"
    assert m25.name == "ml-25m" and m25.split.user_ids == m20.split.user_ids
    ml1 = dataset(write_movielens_1m(tmp_path), tmp_path / "c", "dataset=movielens_1m")
    assert ml1.split.user_ids == m20.split.user_ids and ml1.catalog.item_ids == m20.catalog.item_ids  # same events
    assert all(np.array_equal(a, b) for a, b in zip(ml1.split.sequences, m20.split.sequences))


def test_amazon2023_jsonl_and_gz(tmp_path: Path):
    write_amazon2023(tmp_path / "a")
    write_amazon2023(tmp_path / "b", gz=True)
    plain = dataset(tmp_path / "a", tmp_path / "c", "dataset=amazon2023")
    gz = dataset(tmp_path / "b", tmp_path / "c", "dataset=amazon2023")
    assert plain.name == "amazon2023_All_Beauty" and data_digest(plain) == data_digest(gz)
    assert plain.catalog.titles[plain.catalog.item_ids.index("P00003")] == item_title(3)
    feats = dataset(tmp_path / "a", tmp_path / "c", "dataset=amazon2023", "dataset.items.text=[title,features]",
                    "dataset.items.join=' | '")
    assert feats.catalog.titles[feats.catalog.item_ids.index("P00003")] == f"{item_title(3)} | feature 3"


def test_same_events_in_every_format_build_the_same_data(tmp_path: Path):
    write_table_csv(tmp_path)
    csv = table(tmp_path / "shop", {}, {})
    inter = pl.read_csv(tmp_path / "shop" / "interactions.csv", infer_schema=False)
    items = pl.read_csv(tmp_path / "shop" / "items.csv", infer_schema=False)
    inter.write_csv(tmp_path / "shop" / "i.tsv", separator="\t")
    items.write_csv(tmp_path / "shop" / "m.tsv", separator="\t")
    inter.with_columns(pl.col("timestamp").cast(pl.Int64)).write_parquet(tmp_path / "shop" / "i.parquet")
    items.write_parquet(tmp_path / "shop" / "m.parquet")
    inter.with_columns(pl.col("timestamp").cast(pl.Int64)).write_ndjson(tmp_path / "shop" / "i.jsonl")
    items.write_ndjson(tmp_path / "shop" / "m.jsonl")
    for ext in ("tsv", "parquet", "jsonl"):
        other = table(tmp_path / "shop", {"file": f"i.{ext}"}, {"file": f"m.{ext}"})
        assert data_digest(other) == data_digest(csv), ext


# --- rules: order, ties, text, filtering ------------------------------------------------------------------------------
def test_order_is_time_then_file_row_and_users_by_first_row(tmp_path: Path):
    write(tmp_path / "interactions.csv", "user,item,timestamp\nb,x,5\na,y,9\nb,z,5\na,x,1\nb,y,2\na,z,9\na,w,3\n")
    write(tmp_path / "items.csv", "item,title\nx,X\ny,Y\nz,Z\nw,W\n")
    data = table(tmp_path, {}, {}, val_fraction=0.0)
    ids = data.catalog.item_ids
    seqs = {u: [ids[i] for i in s] for u, s in zip(data.split.user_ids, data.split.sequences)}
    assert data.split.user_ids == ["b", "a"]  # order of the first row
    assert seqs == {"b": ["y", "x", "z"], "a": ["x", "w", "y", "z"]}  # ties (5, 5; 9, 9): file row order
    assert ids == ["y", "x", "z", "w"]  # first appearance in the ordered sequences


def test_no_timestamp_column_keeps_file_order(tmp_path: Path):
    write(tmp_path / "interactions.csv", "user,item\na,z\na,x\nb,x\na,y\nb,y\nb,z\n")
    write(tmp_path / "items.csv", "item,title\nx,X\ny,Y\nz,Z\n")
    data = table(tmp_path, {"timestamp": None}, {})
    ids = data.catalog.item_ids
    assert [[ids[i] for i in s] for s in data.split.sequences] == [["z", "x", "y"], ["x", "y", "z"]]


def test_text_fields_lists_and_whitespace(tmp_path: Path):
    rows = [{"id": "a", "title": "  Lamp\n\tred ", "brand": "Acme", "tags": ["x", " ", "y"]},
            {"id": "b", "title": None, "brand": "Acme", "tags": []},
            {"id": "c", "title": "", "brand": None, "tags": None}]  # no text at all: dropped
    write(tmp_path / "items.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    write(tmp_path / "interactions.csv", "user,item\n" + "".join(f"u{u},{i}\n" for u in range(3) for i in "abcab"))
    data = table(tmp_path, {"timestamp": None}, {"file": "items.jsonl", "item": "id", "text": ["title", "brand", "tags"],
                                                  "join": " / "})
    assert dict(zip(data.catalog.item_ids, data.catalog.titles)) == {"a": "Lamp red / Acme / x / y", "b": "Acme"}


def test_without_item_table_the_text_is_the_id(tmp_path: Path):
    write(tmp_path / "interactions.csv", "user,item\n" + "".join(f"u{u},{i}\n" for u in range(3) for i in "abc"))
    data = table(tmp_path, {"timestamp": None}, None)
    assert data.catalog.titles == data.catalog.item_ids == ["a", "b", "c"]


def test_k_core_iterates_to_a_fixed_point(tmp_path: Path):
    # items p,q,r,s seen by 3 users each (u1..u3), t by u1,u2,u4; u4 has t,p2,... only 2 core items
    rows = [(u, i) for u in ("u1", "u2", "u3") for i in "pqrs"] + [("u1", "t"), ("u2", "t"), ("u4", "t"),
                                                                  ("u4", "x"), ("u4", "y")]
    write(tmp_path / "interactions.csv", "user,item\n" + "".join(f"{u},{i}\n" for u, i in rows))
    write(tmp_path / "items.csv", "item,title\n" + "".join(f"{i},{i.upper()}\n" for i in "pqrstxy"))
    # one pass of 3-core drops x, y (1 user each) -> u4 has 1 item -> dropped -> t has 2 users -> dropped
    data = table(tmp_path, {"timestamp": None}, {}, k_core=3, val_fraction=0.0)
    assert data.split.user_ids == ["u1", "u2", "u3"] and sorted(data.catalog.item_ids) == list("pqrs")
    events = read_table_source(tmp_path, {"file": "interactions.csv", "user": "user", "item": "item"},
                               {"file": "items.csv", "item": "item", "text": ["title"]}, True)
    lone = build_sequences(events, min_user_interactions=3, k_core=None)
    assert "u4" in lone.user_ids and "t" in lone.catalog.item_ids  # without k_core: users >= 3 only
    assert len(build_sequences(events, min_user_interactions=6).user_ids) == 0


def test_min_user_interactions_counts_titled_items_only(tmp_path: Path):
    write(tmp_path / "interactions.csv", "user,item\na,x\na,y\na,n\nb,x\nb,y\nb,z\n")
    write(tmp_path / "items.csv", "item,title\nx,X\ny,Y\nz,Z\nn,\n")
    assert table(tmp_path, {"timestamp": None}, {}).split.user_ids == ["b"]


# --- temporal split ---------------------------------------------------------------------------------------------------
def temporal_fixture(tmp_path: Path) -> Path:
    """10 interactions at t = 1..10 (+ a tie at 9): T_val = t at quantile 0.6, T_test = at 0.8 (method higher)."""
    rows = [("a", "i1", 1), ("a", "i2", 2), ("b", "i3", 3), ("b", "i4", 4), ("a", "i5", 5), ("c", "i6", 6),
            ("b", "i7", 7), ("a", "i8", 8), ("c", "i9", 9), ("b", "i1", 9), ("a", "i2", 10), ("c", "i3", 10)]
    write(tmp_path / "interactions.csv", "user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    write(tmp_path / "items.csv", "item,title\n" + "".join(f"i{k},T{k}\n" for k in range(1, 10)))
    return tmp_path


def test_temporal_split_periods_and_targets(tmp_path: Path):
    data = table(temporal_fixture(tmp_path), {}, {}, split="temporal", temporal_val_quantile=0.6,
                 temporal_test_quantile=0.8)
    # 12 timestamps sorted: 1 2 3 4 5 6 7 8 9 9 10 10; quantile "higher": 0.6 -> index ceil(6.6)=7 -> t=8,
    # 0.8 -> index ceil(8.8)=9 -> t=9. Train t < 8, validation 8 <= t < 9, test t >= 9.
    split, ids = data.split, data.catalog.item_ids
    name = lambda u, c: (split.user_ids[u], ids[split.sequences[u][c]])  # noqa: E731
    assert [name(u, c) for u, c in split.test_examples()] == [("a", "i2"), ("b", "i1"), ("c", "i9")]
    assert [len(split.sequences[u]) for u in range(3)] == [5, 4, 2]  # c ends at its first test item (i3 dropped)
    assert [name(u, c) for u, c in split.val_examples()] == [("a", "i8")]  # only a has an item in [8, 9)
    assert [name(u, c) for u, c in split.train_examples] == [("a", "i5"), ("b", "i7")]  # last item before T_val
    assert [[ids[i] for i in s] for s in split.train_sequences()] == [["i1", "i2", "i5"], ["i3", "i4", "i7"], ["i6"]]
    # histories never hold an item at or after their target's period
    for u, c in split.test_examples():
        assert len(split.histories(np.array([[u, c]]))[0]) == c >= 1
    held = split.held_out()
    assert [name(u, c) for u, c in held.test_examples()] == [("a", "i5"), ("b", "i7"), ("c", "i6")]


def test_temporal_split_all_prefixes_and_no_test_error(tmp_path: Path):
    seqs = [np.array([0, 1, 2, 3]), np.array([4, 5, 6])]
    times = [np.array([1, 2, 3, 4]), np.array([1, 2, 3])]
    split, (t_val, t_test) = split_temporal(["a", "b"], seqs, times, 0.5, 0.9, all_prefixes=True)
    assert (t_val, t_test) == (2, 4)
    assert split.train_examples.tolist() == []  # train parts hold one item each: no target with a history
    assert split.val_examples().tolist() == [[0, 1], [1, 1]] and split.test_examples().tolist() == [[0, 3]]
    split, _ = split_temporal(["a", "b"], seqs, times, 0.9, 0.9, all_prefixes=True)
    assert split.train_examples.tolist() == [[0, 1], [0, 2], [1, 1], [1, 2]] and len(split.val_users) == 0
    with pytest.raises(GlossError, match="no user has an item at or after T_test"):
        split_temporal(["a"], [np.array([0, 1, 2])], [np.array([5, 5, 5])], 0.5, 0.5)


def test_temporal_split_from_a_config(tmp_path: Path):
    data = dataset(write_amazon2023(tmp_path), tmp_path / "c", "dataset=amazon2023", "dataset.split=temporal")
    split = data.split
    assert 0 < len(split.test_examples()) <= len(split.user_ids) and len(split.val_users) > 0
    for u, c in split.val_examples():
        assert c >= 1 and split.train_ends[u] == c


# --- caching ----------------------------------------------------------------------------------------------------------
def test_cache_keys_every_table_setting(tmp_path: Path):
    root, cache = write_table_csv(tmp_path), tmp_path / "c"
    first = dataset(root, cache, "dataset=table", "dataset.name=shop")
    assert data_digest(dataset(root, cache, "dataset=table", "dataset.name=shop")) == data_digest(first)
    joined = dataset(root, cache, "dataset=table", "dataset.name=shop", "dataset.items.text=[title,item]")
    assert joined.catalog.titles[0] == f"{first.catalog.titles[0]} {first.catalog.item_ids[0]}"
    cored = dataset(root, cache, "dataset=table", "dataset.name=shop", "dataset.k_core=6")
    assert len(cored.split.user_ids) < len(first.split.user_ids)
    temporal = dataset(root, cache, "dataset=table", "dataset.name=shop", "dataset.split=temporal")
    assert temporal.split.test_cuts is not None
    assert len(list((cache / "data").glob("*.pkl"))) == 4


# --- bad input: one line naming the file and the key ------------------------------------------------------------------
@pytest.mark.parametrize("override,match", [
    ("dataset.interactions.user=customer", r"interactions\.csv: no column 'customer' \(dataset\.interactions\.user\)"),
    ("dataset.items.text=[title,colour]", r"items\.csv: no column 'colour' \(dataset\.items\.text\[1\]\)"),
    ("dataset.interactions.timestamp=user", r"interactions\.csv: column 'user' \(dataset\.interactions\.timestamp\) "
                                            r"holds 'c\d+', not a number in dataset\.interactions\.timestamp_unit=s"),
    ("dataset.interactions.file=nope.csv", r"^expected data file not found: .*nope\.csv \(dataset\.interactions\.file"),
    ("dataset.interactions.timestamp_unit=datetime", r"dataset\.interactions\.timestamp\) is not date text"),
    ("dataset.interactions.header=false", r"interactions\.csv: dataset\.interactions\.header=false needs "),
])
def test_bad_table_settings_are_one_line_errors(tmp_path: Path, override: str, match: str):
    root = write_table_csv(tmp_path)
    with pytest.raises(GlossError) as e:
        dataset(root, tmp_path / "c", "dataset=table", "dataset.name=shop", override)
    assert "\n" not in str(e.value)
    if "header=false" in override:  # caught by validation, before any file is opened
        assert str(e.value).startswith("dataset.interactions.header=false needs dataset.interactions.columns")
    else:
        assert re.search(match, str(e.value)), str(e.value)


def test_non_numeric_timestamp_names_the_value(tmp_path: Path):
    write(tmp_path / "interactions.csv", "user,item,timestamp\na,x,1\na,y,2020-01-02\na,z,3\n")
    write(tmp_path / "items.csv", "item,title\nx,X\ny,Y\nz,Z\n")
    with pytest.raises(GlossError, match=r"interactions\.csv: column 'timestamp' \(dataset\.interactions\.timestamp\) "
                                         r"holds '2020-01-02', not a number"):
        table(tmp_path, {}, {})
    write(tmp_path / "interactions.csv", "user,item,timestamp\na,x,2020-01-01\na,y,2020-01-02T10:00:00\na,z,2021-01-01\n")
    data = table(tmp_path, {"timestamp_unit": "datetime"}, {}, val_fraction=0.0)
    assert [data.catalog.item_ids[i] for i in data.split.sequences[0]] == ["x", "y", "z"]


def test_missing_values_strict_and_lenient(tmp_path: Path):
    write(tmp_path / "interactions.csv", "user,item,timestamp\na,x,1\n,y,2\na,y,3\na,z,\nb,x,1\nb,y,2\nb,z,3\n")
    write(tmp_path / "items.csv", "item,title\nx,X\ny,Y\nz,Z\nx,Other\n")
    with pytest.raises(GlossError, match=r"interactions\.csv: 2 row\(s\) with no value in column 'user' "
                                         r"\(dataset\.interactions\.user\), the first at data row 2"):
        table(tmp_path, {}, {})
    data = table(tmp_path, {}, {}, strict=False)
    assert data.skipped == {"interactions.csv": 2, "items.csv": 1} and data.split.user_ids == ["b"]
    assert data.catalog.titles[data.catalog.item_ids.index("x")] == "X"  # first row wins
    write(tmp_path / "interactions.csv", "user,item,timestamp\na,x,1\na,y,2\na,z,3\n")
    with pytest.raises(GlossError, match=r"items\.csv: item 'x' \(dataset\.items\.item\) has rows with different"):
        table(tmp_path, {}, {})


def test_ragged_csv_line_and_bad_encoding(tmp_path: Path):
    write(tmp_path / "interactions.csv", "user,item,timestamp\na,x,1\na,y,2,9\na,z,3\n")
    write(tmp_path / "items.csv", "item,title\nx,X\ny,Y\nz,Z\n")
    with pytest.raises(GlossError, match=r"interactions\.csv: cannot read .* as csv \(dataset\.interactions\.format"):
        table(tmp_path, {}, {})
    assert table(tmp_path, {}, {}, strict=False).split.user_ids == ["a"]
    write(tmp_path / "interactions.csv", "user,item,timestamp\na,x,1\na,y,2\na,z,3\n")
    (tmp_path / "items.csv").write_bytes("item;;title\nx;;Caf\xe9\ny;;Y\nz;;Z\n".encode("latin-1"))
    with pytest.raises(GlossError, match=r"items\.csv: not utf-8 text at byte 18 \(dataset\.items\.encoding"):
        table(tmp_path, {}, {"separator": ";;"})
    data = table(tmp_path, {}, {"separator": ";;", "encoding": "latin-1"}, val_fraction=0.0)
    assert data.catalog.titles == ["Café", "Y", "Z"]


def test_malformed_json_line_strict_and_lenient(tmp_path: Path):
    write(tmp_path / "r.jsonl", '{"u": "a", "i": "x", "t": 1}\n{"u": "a", "i": "y", "t": 2}\nnot json\n'
                                '{"u": "a", "i": "z", "t": 3}\n')
    write(tmp_path / "items.csv", "item,title\nx,X\ny,Y\nz,Z\n")
    inter = {"file": "r.jsonl", "user": "u", "item": "i", "timestamp": "t"}
    with pytest.raises(GlossError, match=r"r\.jsonl:3: cannot read its first rows as jsonl \(dataset\.interactions\."
                                         r"format; dataset\.strict=false skips such lines\): not a JSON object"):
        table(tmp_path, inter, {})
    data = table(tmp_path, inter, {}, strict=False, val_fraction=0.0)
    assert data.skipped == {"r.jsonl": 1} and len(data.split.sequences[0]) == 3


def test_json_lines_in_another_encoding(tmp_path: Path):
    write(tmp_path / "interactions.csv", "user,item\na,x\na,y\na,z\n")
    (tmp_path / "m.jsonl").write_bytes('{"item": "x", "title": "Caf\u00e9"}\n{"item": "y", "title": "Y"}\n'
                                       '{"item": "z", "title": "Z"}\n'.encode("latin-1"))
    data = table(tmp_path, {"timestamp": None}, {"file": "m.jsonl", "encoding": "latin-1"})
    assert data.catalog.titles == ["Café", "Y", "Z"]


def test_gz_file_found_beside_the_configured_name(tmp_path: Path):
    with gzip.open(tmp_path / "interactions.csv.gz", "wt") as f:
        f.write("user,item\na,x\na,y\na,z\n")
    write(tmp_path / "items.csv", "item,title\nx,X\ny,Y\nz,Z\n")
    assert len(table(tmp_path, {"timestamp": None}, {}).split.user_ids) == 1


@pytest.mark.parametrize("override,message", [
    ("dataset.k_core=0", "dataset.k_core=0: must be an integer >= 1"),
    ("dataset.split=random", "dataset.split='random': must be one of leave_one_out, temporal"),
    ("dataset.temporal_test_quantile=1.0", "dataset.temporal_test_quantile=1.0: must be a number above 0 and below 1"),
    ("dataset.temporal_val_quantile=0.95", "dataset.temporal_val_quantile=0.95 is above"),
    ("dataset.interactions.format=xlsx", "dataset.interactions.format='xlsx': must be one of csv, tsv, parquet, jsonl"),
    ("dataset.interactions.encoding=klingon", "dataset.interactions.encoding='klingon': not a text encoding"),
    ("dataset.interactions.timestamp_unit=days", "dataset.interactions.timestamp_unit='days': must be one of"),
    ("dataset.items.text=[]", "dataset.items.text=[]: must be a non-empty list"),
    ("dataset.items.quote_char=ab", "dataset.items.quote_char='ab': must be one character or null"),
    ("dataset.interactions.user=null", "dataset.interactions.user=None: must be a name"),
    ("dataset.interactions.separator=''", "dataset.interactions.separator='': must be a non-empty string"),
])
def test_dataset_keys_checked_before_any_file(override: str, message: str):
    cfg = composed("dataset=table", "model=cooc", "paths.data_dir=/nowhere", override)
    with pytest.raises(GlossError) as e:
        validate_config(cfg)
    assert str(e.value).startswith(message), str(e.value)


def test_temporal_split_needs_timestamps():
    for overrides in (["dataset=beauty"], ["dataset=table", "dataset.interactions.timestamp=null"]):
        cfg = composed(*overrides, "dataset.split=temporal", "model=cooc", "paths.data_dir=/nowhere")
        with pytest.raises(GlossError, match="dataset.split=temporal needs"):
            validate_config(cfg)
    cfg = composed("dataset=table", "dataset.split=temporal", "dataset.temporal_val_quantile=0.9", "model=cooc",
                   "eval.val=true", "paths.data_dir=/nowhere")
    with pytest.raises(GlossError, match="equals dataset.temporal_test_quantile: .* no validation users, and eval.val"):
        validate_config(cfg)


def test_every_dataset_config_composes_and_passes_validation():
    for path in sorted((Path(__file__).resolve().parents[2] / "conf" / "dataset").glob("*.yaml")):
        cfg = composed(f"dataset={path.stem}", "model=cooc", "paths.data_dir=/D", "paths.cache_dir=/C")
        validate_config(cfg)
        node = OmegaConf.to_container(cfg.dataset, resolve=True)
        assert node["_target_"] == "gloss.data.load_dataset" and node["name"], path.name
