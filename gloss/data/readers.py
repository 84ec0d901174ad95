"""Readers for Amazon 2014 5-core data: the official raw files and the offline sequence+titles format.

Both return `RawData`: chronological item sequences per user and a title per item (empty = no title).
Malformed lines raise `DataFormatError` (file:line) or, with strict=False, are skipped and counted. Malformed
includes a line that is not UTF-8 or holds a NUL byte (binary data), a line longer than MAX_LINE_CHARS (refused
without being held in memory), a user listed twice, a field of the wrong JSON type in the official files and, in
item_titles.tsv, an ASIN listed again with another title (the first line wins; a repeat of the same title is harmless
and allowed). In every file a UTF-8 byte order mark is ignored, blank (whitespace-only) lines are skipped, and only
LF (or CRLF) ends a line: a bare CR is part of the line, so line numbers are those of `wc -l`.
"""
from __future__ import annotations

import ast
import gzip
import json
import logging
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

from gloss.cache import atomic_write
from gloss.errors import DataFormatError, GlossError

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/{file}"


@dataclass
class RawData:
    sequences: dict[str, list[str]]  # user id -> item ids, oldest first (insertion order = file order)
    titles: dict[str, str]  # item id -> title ("" when the source has none)
    files: list[Path]  # the input files, for content hashing
    skipped: dict[str, int] = field(default_factory=dict)  # file name -> malformed lines skipped


class _LineErrors:
    """Raises on the first bad line (strict) or counts it (lenient)."""

    def __init__(self, path: Path, strict: bool):
        self.path, self.strict, self.count = path, strict, 0

    def bad(self, line_no: int, reason: str) -> None:
        if self.strict:
            raise DataFormatError(str(self.path), line_no, reason + " (set dataset.strict=false to skip such lines)")
        self.count += 1
        if self.count <= 5:
            log.warning("skipping %s:%d: %s", self.path, line_no, reason)


MAX_LINE_CHARS = 16 << 20  # far above any real line (a long official metadata line is ~100 k characters)
TEXT = dict(encoding="utf-8-sig", errors="surrogateescape", newline="\n")  # how every input file is opened


def text_lines(f: IO[str], errors: _LineErrors, first_line: int = 1) -> Iterator[tuple[int, str]]:
    """(line number, line without its line break) of a file opened with TEXT; a line that is not UTF-8 text goes to
    `errors` instead (a strict decode would fail somewhere in a buffer, with no line number and the bytes dumped), and
    so does one longer than MAX_LINE_CHARS, read past in chunks of that size."""
    line_no = first_line - 1
    while line := f.readline(MAX_LINE_CHARS + 1):
        line_no += 1
        if len(line) > MAX_LINE_CHARS:
            errors.bad(line_no, f"longer than {MAX_LINE_CHARS:,} characters")
            while not line.endswith("\n") and (line := f.readline(MAX_LINE_CHARS)):
                pass
            continue
        if (reason := not_text(line)) is not None:
            errors.bad(line_no, reason)
            continue
        yield line_no, line.removesuffix("\n").removesuffix("\r")


def not_text(line: str) -> str | None:
    """Why `line` (decoded with surrogateescape) is not UTF-8 text, or None when it is."""
    if not line.isascii():
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"not valid UTF-8 (byte 0x{ord(line[e.start]) - 0xDC00:02x} at column {e.start + 1})"
    if "\0" in line:
        return "holds a NUL byte (binary data, not text)"
    return None


def review_problem(user: object, item: object, ts: object) -> str | None:
    """Why a review's fields cannot be used (ids must be non-empty strings, the time a non-negative int64), or None."""
    for name, value in (("reviewerID", user), ("asin", item)):
        if not isinstance(value, str) or not value:
            return f"{name} must be a non-empty string, got {value!r:.40}"
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts < 2**63:
        return f"unixReviewTime must be an integer from 0 to 2^63-1 (seconds), got {ts!r:.40}"
    return None


def require_files(paths: list[Path], hint: str) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise GlossError(f"expected data file(s) not found: {', '.join(missing)}. {hint}")


def read_offline(folder: Path, strict: bool = True) -> RawData:
    """`user_sequence.txt` (USER ITEM ITEM ...) + `item_titles.tsv` (header `asin<TAB>title`)."""
    seq_path, title_path = folder / "user_sequence.txt", folder / "item_titles.tsv"
    require_files(
        [seq_path, title_path],
        "Point GLOSS_DATA_DIR (or paths.data_dir) at the folder holding amazon2014/<name>/ "
        "(e.g. GLOSS_DATA_DIR=../shared/data), or use dataset.source=official.",
    )
    skipped: dict[str, int] = {}
    sequences: dict[str, list[str]] = {}
    errors = _LineErrors(seq_path, strict)
    with open(seq_path, **TEXT) as f:
        for line_no, line in text_lines(f, errors):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                errors.bad(line_no, "expected 'USER_ID ITEM_ID [ITEM_ID ...]'")
                continue
            if parts[0] in sequences:
                errors.bad(line_no, f"user {parts[0]!r} appears twice")
                continue
            sequences[parts[0]] = parts[1:]
    skipped[seq_path.name] = errors.count

    titles: dict[str, str] = {}
    title_line: dict[str, int] = {}
    errors = _LineErrors(title_path, strict)
    with open(title_path, **TEXT) as f:
        header = next((line for _, line in text_lines(f, _LineErrors(title_path, True))), "").split("\t")
        if header[:2] != ["asin", "title"]:
            raise DataFormatError(str(title_path), 1, f"expected header 'asin<TAB>title', got {header[:2]!r:.80}")
        for line_no, line in text_lines(f, errors, first_line=2):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0]:
                errors.bad(line_no, f"expected 'ASIN<TAB>TITLE', got {len(parts)} field(s)")
                continue
            asin, title = parts[0], parts[1].strip()
            if asin in titles:
                if titles[asin] != title:
                    errors.bad(line_no, f"ASIN {asin!r} already has another title (line {title_line[asin]})")
                continue
            titles[asin], title_line[asin] = title, line_no
    skipped[title_path.name] = errors.count
    return RawData(sequences, titles, [seq_path, title_path], skipped)


def download_official(folder: Path, category: str) -> None:
    """Fetch the official 5-core reviews and metadata (needs internet)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (f"reviews_{category}_5.json.gz", f"meta_{category}.json.gz"):
        target = folder / name
        if target.exists():
            continue
        url = OFFICIAL_URL.format(file=name)
        log.info("downloading %s", url)
        try:  # unique temp name + rename: parallel jobs may download the same file
            atomic_write(target, lambda tmp: urllib.request.urlretrieve(url, tmp))
        except OSError as e:
            raise GlossError(f"could not download {url} ({e}); place {name} in {folder} by hand") from e


def read_official(folder: Path, category: str, strict: bool = True, download: bool = False) -> RawData:
    """Official `reviews_<Category>_5.json.gz` (JSON lines) + `meta_<Category>.json.gz` (Python dict literals).

    Interactions are ordered by `unixReviewTime`; ties keep file order (a stable sort).
    """
    reviews, meta = folder / f"reviews_{category}_5.json.gz", folder / f"meta_{category}.json.gz"
    if download:
        download_official(folder, category)
    require_files([reviews, meta], "Download them from the Amazon 2014 site or run with dataset.download=true.")
    skipped: dict[str, int] = {}
    events: dict[str, list[tuple[int, int, str]]] = {}
    errors = _LineErrors(reviews, strict)
    with gzip.open(reviews, "rt", **TEXT) as f:
        for line_no, line in text_lines(f, errors):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                user, item, ts = row["reviewerID"], row["asin"], row["unixReviewTime"]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError) as e:
                errors.bad(line_no, f"not a review JSON object with reviewerID/asin/unixReviewTime ({e})")
                continue
            if (problem := review_problem(user, item, ts)) is not None:
                errors.bad(line_no, problem)
                continue
            events.setdefault(user, []).append((ts, line_no, item))
    skipped[reviews.name] = errors.count
    sequences = {u: [item for _, _, item in sorted(ev)] for u, ev in events.items()}

    needed = {i for seq in sequences.values() for i in seq}
    titles: dict[str, str] = {i: "" for i in needed}
    title_line: dict[str, int] = {}  # the line that gave an ASIN its title (a later, different one is an error)
    errors = _LineErrors(meta, strict)
    with gzip.open(meta, "rt", **TEXT) as f:
        for line_no, line in text_lines(f, errors):
            if not line.strip():
                continue
            try:
                row = ast.literal_eval(line)
                asin, title = row["asin"], row.get("title")
            except (ValueError, SyntaxError, KeyError, TypeError, AttributeError, MemoryError, RecursionError) as e:
                errors.bad(line_no, f"not a metadata dict literal with 'asin' ({type(e).__name__})")
                continue
            if not isinstance(asin, str) or not isinstance(title, (str, type(None))):
                errors.bad(line_no, f"'asin' must be a string and 'title' a string or absent, got {asin!r:.40} and "
                                    f"{title!r:.40}")
                continue
            if asin not in needed:
                continue
            title = (title or "").strip()
            if asin in title_line:
                if title != titles[asin]:
                    errors.bad(line_no, f"ASIN {asin!r} already has another title (line {title_line[asin]})")
                continue
            titles[asin], title_line[asin] = title, line_no
    skipped[meta.name] = errors.count
    return RawData(sequences, titles, [reviews, meta], skipped)
