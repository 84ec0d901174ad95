"""Content-keyed on-disk cache: a changed input or config gives a new key, so stale artefacts cannot leak."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable


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


def cached_pickle(path: Path, build: Callable[[], Any]) -> tuple[Any, bool]:
    """Load `path` if present, else build and store. Returns (value, was_cached)."""
    if path.is_file():
        with open(path, "rb") as f:
            return pickle.load(f), True
    value = build()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)

    atomic_write(path, write)
    return value, False
