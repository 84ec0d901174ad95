"""Content-keyed on-disk cache: a changed input or config gives a new key, so stale artefacts cannot leak."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import typing
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


# What a NumPy array needs to be unpickled (numpy 2 and 1 names): functions that only rebuild arrays and scalars.
NUMPY_GLOBALS = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy._core.numeric", "_frombuffer"),
                 ("numpy.core.numeric", "_frombuffer"), ("numpy._core.multiarray", "_reconstruct"),
                 ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
                 ("numpy.core.multiarray", "scalar")}


def dataclass_family(cls: type) -> set[type]:
    """`cls` and every dataclass its fields declare, recursively (the classes a cached value is built from)."""
    found = {cls}
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    stack = list(hints.values())
    while stack:
        hint = stack.pop()
        stack.extend(typing.get_args(hint))
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and hint not in found:
            found |= dataclass_family(hint)
    return found


class DataUnpickler(pickle.Unpickler):
    """Unpickles plain values, NumPy arrays and the allowed classes only: any other global (os.system, exec, a
    class's __reduce__ payload) is refused before it is called, so a planted entry in a shared cache folder is data,
    never code."""

    def __init__(self, file: Any, allowed: set[type]):
        super().__init__(file)
        self.allowed = {(c.__module__, c.__qualname__): c for c in allowed}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a cache entry")


def cached_pickle(path: Path, build: Callable[[], T], kind: type[T]) -> tuple[T, bool]:
    """Load `path` if present, readable and a `kind`, else build and store. Returns (value, was_cached). Only `kind`
    and the dataclasses its fields declare are unpickled (DataUnpickler); an entry that is not a `kind` is rebuilt."""
    allowed = dataclass_family(kind)

    def load(entry: Path) -> T:
        with open(entry, "rb") as f:
            value = DataUnpickler(f, allowed).load()
        if not isinstance(value, kind):
            raise TypeError(f"holds a {type(value).__name__}, not a {kind.__name__}")
        return value

    value = load_entry(path, load)
    if value is not None:
        return value, True
    value = build()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)

    atomic_write(path, write)
    return value, False
