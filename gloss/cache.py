"""Content-keyed on-disk cache: a changed input or config gives a new key, so stale artefacts cannot leak."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def content_key(*parts: Any, files: Iterable[Path] = ()) -> str:
    """sha256 over JSON-able parts plus the bytes of `files`."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for f in files:
        h.update(file_digest(Path(f)).encode())
    return h.hexdigest()[:24]


def texts_key(*parts: Any, texts: list[str]) -> str:
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:24]


def temp_name(path: Path, suffix: str = "tmp") -> Path:
    """A sibling of `path` no other writer uses: pid (processes) + random (threads of one process)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.{suffix}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write to a unique temp file then rename, so an interrupted run never leaves a truncated cache entry and
    parallel jobs (hydra/launcher=local_parallel, SLURM arrays) filling the same entry never see a partial file:
    the last rename wins, and content-keyed entries are identical anyway."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_entry(path: Path, load: Callable[[Path], T]) -> T | None:
    """`load(path)`, or None when there is no entry. An entry that cannot be read (truncated by a full disk or a
    copy, or written by an older gloss) is deleted with a warning, so the caller rebuilds it instead of failing on
    every run; `load` raises to reject an entry."""
    if not path.is_file():
        return None
    try:
        return load(path)
    except Exception as e:  # noqa: BLE001 - whatever is wrong with the entry, rebuilding it is the fix
        log.warning("cache entry %s is unreadable (%s: %s): deleting it and rebuilding", path, type(e).__name__, e)
        path.unlink(missing_ok=True)  # a parallel job may have removed it already
        return None


def _load_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


def cached_pickle(path: Path, build: Callable[[], Any]) -> tuple[Any, bool]:
    """Load `path` if present and readable, else build and store. Returns (value, was_cached)."""
    value = load_entry(path, _load_pickle)
    if value is not None:
        return value, True
    value = build()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)

    atomic_write(path, write)
    return value, False
