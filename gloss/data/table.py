"""The generic dataset source (`dataset.source=table`): an interactions table (user, item, timestamp) and an item
table (item id + text fields), CSV / TSV / Parquet / JSON lines, read in columns with polars.

Each table is one config node (`dataset.interactions`, `dataset.items`; keys in docs/datasets.md). Before reading
the whole file its columns are checked against the node: a missing column is a GlossError naming the file and the
key. Id columns are read as text (CSV ids keep leading zeros); the timestamp is a number in `timestamp_unit`, or
date text with `timestamp_unit=datetime`. A row with no user, item or timestamp is an error (strict) or is skipped
and counted (`dataset.strict=false`). Item text: the `text` columns of the item's first row, lists joined, each
field stripped, empty fields left out, joined with `join`, whitespace runs (newlines, tabs) made one space; an item
with no text, or no row in the item table, is dropped with its interactions (as untitled Amazon items are).
"""
from __future__ import annotations

import codecs
import gzip
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import polars as pl

from gloss.errors import GlossError

log = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "parquet", "jsonl")
SUFFIX_FORMATS = {".csv": "csv", ".dat": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
                  ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
TIME_UNITS = ("s", "ms", "us", "ns", "datetime")
FILE_KEYS = ("file", "format", "separator", "encoding", "header", "columns", "quote_char")
UNIT_SEPARATOR = "\x1f"  # stands in for a multi-character separator (e.g. MovieLens' "::"), which polars cannot split
INFER_ROWS = 1000  # JSON lines: the rows whose keys and types are checked before the whole file is read


@dataclass
class Events:
    """What a source gives the preprocessing: one row per interaction and one text per item."""

    frame: pl.DataFrame  # user (str), item (str), ts (number or null: file order only), row (file order)
    texts: pl.DataFrame  # item (str), text (str; "" or null = no text)
    files: list[Path]  # the input files, for content hashing
    skipped: dict[str, int] = field(default_factory=dict)  # file name -> rows skipped (strict=false)
    time_unit: str | None = None  # the unit of `ts` (for messages); None: no timestamps


def table_files(folder: Path, interactions: Mapping, items: Mapping | None) -> list[Path]:
    """The files a table source reads (a missing one: GlossError naming it and its config key)."""
    return [resolve_file(folder, interactions, "dataset.interactions")] + (
        [resolve_file(folder, items, "dataset.items")] if items is not None else [])


def resolve_file(folder: Path, node: Mapping, key: str) -> Path:
    """`node.file` under `folder` (an absolute path stays), or the same name + ".gz" when only that exists."""
    if not node.get("file"):
        raise GlossError(f"{key}.file is not set: name the table's file (relative to dataset.folder)")
    path = Path(str(node["file"])).expanduser()
    path = path if path.is_absolute() else folder / path
    gz = path.with_name(path.name + ".gz")
    if not path.is_file() and gz.is_file():
        return gz
    if not path.is_file():
        raise GlossError(f"expected data file not found: {path} ({key}.file under dataset.folder={folder}); gloss does "
                         "not download it: place the file there or set GLOSS_DATA_DIR / dataset.data_dir")
    return path


def table_format(path: Path, node: Mapping, key: str) -> str:
    fmt = node.get("format")
    if fmt is None:
        stem = path.with_suffix("") if path.suffix == ".gz" else path
        fmt = SUFFIX_FORMATS.get(stem.suffix.lower())
        if fmt is None:
            raise GlossError(f"{path}: cannot tell the format from the name; set {key}.format to one of "
                             f"{', '.join(FORMATS)}")
    if fmt not in FORMATS:
        raise GlossError(f"{key}.format={fmt!r}: must be one of {', '.join(FORMATS)} or null")
    return fmt


class Table:
    """One configured file: its columns (checked cheaply first), then the columns asked for, as a DataFrame."""

    def __init__(self, path: Path, node: Mapping, key: str, strict: bool):
        self.path, self.node, self.key, self.strict = path, node, key, strict
        self.format = table_format(path, node, key)
        sep = node.get("separator")
        self.separator = ("\t" if self.format == "tsv" else ",") if sep is None else str(sep)
        self.encoding = str(node.get("encoding") or "utf-8")
        self.header = bool(node.get("header", True))
        self.names = list(node["columns"]) if node.get("columns") is not None else None
        self.quote_char = node.get("quote_char", '"')
        self.source = self.load()
        self.bad_lines = 0  # JSON lines skipped with strict=false
        if self.format == "jsonl" and not strict:
            self.source = self.valid_json_lines()
        self.schema = self.peek()

    def load(self) -> Path | bytes:
        """The path itself, or the file's bytes re-encoded as UTF-8 (gzip, another encoding, or a multi-character
        separator swapped for UNIT_SEPARATOR)."""
        csv = self.format in ("csv", "tsv")
        utf8 = self.format == "parquet" or codecs.lookup(self.encoding).name == "utf-8"  # parquet: binary
        multi = csv and len(self.separator) > 1
        if self.path.suffix != ".gz" and utf8 and not multi:
            return self.path
        data = gzip.open(self.path).read() if self.path.suffix == ".gz" else self.path.read_bytes()
        if utf8 and not multi:
            return data
        try:
            text = data.decode(self.encoding, errors="strict" if self.strict else "replace")
        except UnicodeDecodeError as e:
            raise GlossError(f"{self.path}: not {self.encoding} text at byte {e.start} ({self.key}.encoding; "
                             "dataset.strict=false replaces such bytes)") from None
        if multi:
            if UNIT_SEPARATOR in text:
                raise GlossError(f"{self.path}: holds the byte 0x1f, which stands in for {self.key}.separator="
                                 f"{self.separator!r}; use a one-character separator")
            text = text.replace(self.separator, UNIT_SEPARATOR)
        return text.encode("utf-8")

    def valid_json_lines(self) -> Path | bytes:
        """strict=false: the file without its lines that are not a JSON object (counted in `bad_lines`); the lines are
        checked one by one only when polars cannot read the file as it is."""
        try:
            pl.read_ndjson(self.src(), infer_schema_length=INFER_ROWS)
            return self.source
        except pl.exceptions.PolarsError:
            pass
        data = self.source if isinstance(self.source, bytes) else self.path.read_bytes()
        kept = []
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                ok = isinstance(json.loads(line), dict)
            except ValueError:
                ok = False
            if ok:
                kept.append(line)
            else:
                self.bad_lines += 1
        if self.bad_lines:
            log.warning("%s: skipping %d line(s) that are not JSON objects", self.path, self.bad_lines)
        return b"\n".join(kept) + b"\n"

    def src(self) -> Any:
        return io.BytesIO(self.source) if isinstance(self.source, bytes) else self.source

    def csv_args(self) -> dict:
        sep = UNIT_SEPARATOR if len(self.separator) > 1 else self.separator
        return dict(separator=sep, has_header=self.header, quote_char=self.quote_char, infer_schema=False,
                    encoding="utf8" if self.strict else "utf8-lossy", truncate_ragged_lines=not self.strict)

    def fail(self, e: Exception, doing: str) -> GlossError:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = f"{self.key}.format / .separator / .header / .quote_char" if self.format in ("csv", "tsv") else \
            f"{self.key}.format"
        where = str(self.path)
        if self.format == "jsonl":  # polars names no line: find the first one that is not a JSON object
            data = self.source if isinstance(self.source, bytes) else self.path.read_bytes()
            for line_no, line in enumerate(data.splitlines(), 1):
                try:
                    if not line.strip() or isinstance(json.loads(line), dict):
                        continue
                except ValueError:
                    pass
                where, reason = f"{self.path}:{line_no}", "not a JSON object"
                break
        strict = "" if not self.strict else "; dataset.strict=false skips such lines" if self.format == "jsonl" else \
            "; dataset.strict=false drops a line's extra fields"
        return GlossError(f"{where}: cannot {doing} as {self.format} ({hint}{strict}): {reason}")

    def peek(self) -> dict[str, pl.DataType]:
        """Column name -> type, from the header (CSV: every column is text), the Parquet schema, or the first
        INFER_ROWS rows of JSON lines."""
        try:
            if self.format == "parquet":
                return dict(pl.read_parquet_schema(self.src()))
            if self.format == "jsonl":
                return dict(pl.read_ndjson(self.src(), n_rows=INFER_ROWS, infer_schema_length=INFER_ROWS).schema)
            first = pl.read_csv(self.src(), n_rows=1, **self.csv_args())
        except (pl.exceptions.PolarsError, OSError, ValueError) as e:
            raise self.fail(e, "read its first rows") from None
        if self.header:
            return {name: pl.String for name in first.columns}
        if self.names is None:
            raise GlossError(f"{self.path}: {self.key}.header=false needs {self.key}.columns, the name of each of its "
                             f"{first.width} column(s) in file order")
        if len(self.names) != first.width:
            raise GlossError(f"{self.path}: has {first.width} column(s) but {self.key}.columns names "
                             f"{len(self.names)}: {list(self.names)}")
        return {name: pl.String for name in self.names}

    def require(self, columns: Mapping[str, str]) -> None:
        """`columns`: config key (e.g. "user") -> column name; each must be in the file."""
        for key, name in columns.items():
            if name not in self.schema:
                raise GlossError(f"{self.path}: no column {name!r} ({self.key}.{key}); its columns: "
                                 f"{', '.join(map(str, self.schema)) or 'none'}")

    def read(self, columns: list[str]) -> pl.DataFrame:
        """The named columns, in file row order."""
        try:
            if self.format == "parquet":
                return pl.read_parquet(self.src(), columns=columns)
            if self.format == "jsonl":
                schema = {c: json_type(self.schema[c]) for c in columns}
                return pl.read_ndjson(self.src(), schema=schema, ignore_errors=not self.strict)
            args = self.csv_args()
            if not self.header:
                args["new_columns"] = self.names
            frame = pl.read_csv(self.src(), **args)
            return frame.select(columns)
        except (pl.exceptions.PolarsError, OSError, ValueError) as e:
            raise self.fail(e, "read it") from None


def json_type(dtype: pl.DataType) -> pl.DataType:
    """What a JSON column is read as: lists of text stay lists, numbers stay numbers, the rest is text."""
    if isinstance(dtype, pl.List):
        return pl.List(pl.String)
    if dtype.is_numeric() or dtype == pl.Boolean:
        return dtype
    return pl.String


def drop_missing(frame: pl.DataFrame, columns: Mapping[str, str], table: Table, skipped: dict[str, int]) -> pl.DataFrame:
    """Rows with a null in any of `columns` (canonical name -> config key): an error, or (strict=false) skipped."""
    missing = pl.any_horizontal([pl.col(c).is_null() for c in columns])
    bad = frame.select(missing.sum()).item()
    if not bad:
        return frame
    if table.strict:
        row = frame.with_row_index("_r").filter(missing)
        first = row.row(0, named=True)
        key = next(k for c, k in columns.items() if first[c] is None)
        raise GlossError(f"{table.path}: {bad} row(s) with no value in column {table.node.get(key)!r} "
                         f"({table.key}.{key}), the first at data row {first['_r'] + 1} (set dataset.strict=false "
                         "to skip such rows)")
    skipped[table.path.name] = skipped.get(table.path.name, 0) + bad
    log.warning("%s: skipping %d row(s) with a missing %s", table.path, bad, "/".join(columns))
    return frame.filter(~missing)


def check_ids(frame: pl.DataFrame, column: str, table: Table, key: str) -> None:
    """Item ids are written one per line in a run's items.tsv: no tab or line break inside."""
    bad = frame.filter(pl.col(column).str.contains(r"[\t\r\n]"))
    if bad.height:
        raise GlossError(f"{table.path}: id {bad[column][0]!r} in column {table.node.get(key)!r} ({table.key}.{key}) "
                         "holds a tab or line break")


def as_text(frame: pl.DataFrame, column: str, table: Table, key: str) -> pl.Expr:
    dtype = frame.schema[column]
    if dtype == pl.String or dtype.is_integer():
        return pl.col(column).cast(pl.String)
    raise GlossError(f"{table.path}: column {table.node.get(key)!r} ({table.key}.{key}) holds {dtype}, not ids "
                     "(text or integers)")


def timestamps(frame: pl.DataFrame, table: Table, unit: str) -> pl.Series:
    """The `ts` column as numbers (datetime: microseconds); a value that is not one is a GlossError."""
    ts, key = frame["ts"], f"{table.key}.timestamp"
    name = table.node.get("timestamp")
    if unit == "datetime":
        try:
            if ts.dtype == pl.String:
                ts = ts.str.to_datetime(strict=True, time_unit="us")
            return ts.cast(pl.Datetime("us")).dt.epoch("us")
        except pl.exceptions.PolarsError as e:
            raise GlossError(f"{table.path}: column {name!r} ({key}) is not date text with timestamp_unit=datetime "
                             f"({str(e).splitlines()[0]})") from None
    if ts.dtype.is_numeric():
        return ts
    if ts.dtype == pl.Date or isinstance(ts.dtype, pl.Datetime):
        return ts.cast(pl.Datetime("us")).dt.epoch("us")
    if ts.dtype == pl.String:
        for dtype in (pl.Int64, pl.Float64):
            try:
                return ts.str.strip_chars().cast(dtype, strict=True)
            except pl.exceptions.PolarsError:
                continue
        example = ts.filter(ts.str.strip_chars().cast(pl.Float64, strict=False).is_null())[0]
        raise GlossError(f"{table.path}: column {name!r} ({key}) holds {example!r}, not a number in "
                         f"{table.key}.timestamp_unit={unit} (set it to datetime for date text)")
    raise GlossError(f"{table.path}: column {name!r} ({key}) holds {ts.dtype}, not timestamps")


def read_interactions(path: Path, node: Mapping, strict: bool, skipped: dict[str, int]) -> tuple[pl.DataFrame, str | None]:
    """(user, item, ts, row) in file row order, and the timestamps' unit (None without a timestamp column)."""
    table = Table(path, node, "dataset.interactions", strict)
    if table.bad_lines:
        skipped[path.name] = skipped.get(path.name, 0) + table.bad_lines
    wanted = {"user": node.get("user"), "item": node.get("item")}
    if node.get("timestamp") is not None:
        wanted["timestamp"] = node["timestamp"]
    table.require(wanted)
    frame = table.read(list(dict.fromkeys(wanted.values())))
    canonical = {"user": "user", "item": "item", "timestamp": "ts"}
    frame = frame.select(pl.col(col).alias(canonical[key]) for key, col in wanted.items())
    frame = frame.with_columns(as_text(frame, "user", table, "user").alias("user"),
                               as_text(frame, "item", table, "item").alias("item"))
    unit = None
    if "ts" in frame.columns:
        unit = str(node.get("timestamp_unit") or "s")
        frame = drop_missing(frame.with_row_index("row"), {"user": "user", "item": "item", "ts": "timestamp"},
                             table, skipped)
        frame = frame.with_columns(ts=timestamps(frame, table, unit))
    else:
        frame = drop_missing(frame.with_row_index("row"), {"user": "user", "item": "item"}, table, skipped)
        frame = frame.with_columns(ts=pl.lit(None, dtype=pl.Int64))
    check_ids(frame, "item", table, "item")
    return frame.select("user", "item", "ts", "row"), unit


def read_items(path: Path, node: Mapping, strict: bool, skipped: dict[str, int]) -> pl.DataFrame:
    """(item, text): one row per item id, the first row of the file for that id."""
    table = Table(path, node, "dataset.items", strict)
    if table.bad_lines:
        skipped[path.name] = skipped.get(path.name, 0) + table.bad_lines
    fields = list(node.get("text") or [])
    if not fields:
        raise GlossError(f"dataset.items.text is empty: name the column(s) of {path} that make an item's text")
    table.require({"item": node.get("item"), **{f"text[{i}]": name for i, name in enumerate(fields)}})
    columns = list(dict.fromkeys([node["item"], *fields]))
    frame = table.read(columns)
    join = str(node.get("join", " "))
    parts = []
    for name in fields:
        col = pl.col(name)
        if isinstance(frame.schema[name], pl.List):
            col = col.list.eval(pl.element().cast(pl.String).str.strip_chars()).list.eval(
                pl.element().filter(pl.element() != "")).list.join(join)
        else:
            col = col.cast(pl.String)
        col = col.str.strip_chars()
        parts.append(pl.when(col != "").then(col))
    text = pl.concat_str(parts, separator=join, ignore_nulls=True).str.replace_all(r"\s+", " ").str.strip_chars()
    frame = frame.select(as_text(frame, node["item"], table, "item").alias("item"), text.alias("text"))
    frame = drop_missing(frame, {"item": "item"}, table, skipped)
    check_ids(frame, "item", table, "item")
    first = frame.unique("item", keep="first", maintain_order=True)
    if first.height < frame.height:
        conflict = frame.group_by("item").agg(pl.col("text").n_unique().alias("n")).filter(pl.col("n") > 1)
        if conflict.height and strict:
            raise GlossError(f"{path}: item {conflict['item'][0]!r} ({table.key}.item) has rows with different texts "
                             "(set dataset.strict=false to keep each item's first row)")
        skipped[path.name] = skipped.get(path.name, 0) + conflict.height
    return first


def read_table_source(folder: Path, interactions: Mapping, items: Mapping | None, strict: bool) -> Events:
    """The table source: `interactions` and `items` nodes (items=None: an item's text is its id)."""
    files = table_files(folder, interactions, items)
    skipped: dict[str, int] = {}
    frame, unit = read_interactions(files[0], interactions, strict, skipped)
    if items is None:
        texts = frame.select(pl.col("item").unique(maintain_order=True)).with_columns(text=pl.col("item"))
    else:
        texts = read_items(files[1], items, strict, skipped)
    return Events(frame, texts, files, skipped, unit)
