"""Batch inference (`python predict.py run_dir=<run> users=all out=recs.parquet k=100`): every user's top-k next
items into one Parquet file of rows (user, rank, item, score), rank 1 = best.

Whose history: each user's full known sequence in the run's data (train + validation + test items, oldest first):
the "what next, after everything we know" use, not the evaluation cut (eval.py ranks that).

Memory stays bounded: users are ranked in chunks of `chunk_users`, each chunk written atomically as its own part file
in `<out>.parts/` (with manifest.json: what is being predicted), then the parts are merged by a streaming Polars
sink into `out` and removed. A re-run with the same run, k, users and chunking skips the parts already written (a
killed run resumes); parts of another prediction are refused. `out` carries the same identity in its Parquet
key-value metadata, so re-running a finished prediction is a no-op and a different one is refused.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gloss.errors import GlossError
from gloss.eval.outputs import UMASK, write_atomic
from gloss.eval.sharded import Engine, rank_users
from gloss.models.base import histories_digest
from gloss.progress import format_duration

log = logging.getLogger("gloss")
MANIFEST = "manifest.json"
METADATA_KEY = "gloss.predict"  # out's Parquet key-value metadata: the prediction's identity (JSON)
HISTORY = "full sequence (train + validation + test items)"


def read_users(spec: str, user_ids: list[str], dataset: str) -> np.ndarray:
    """User indices of `users=`: `all` (the data's order), or a file with one user id per line (blank lines skipped;
    an unknown id is named by file:line)."""
    if spec == "all":
        return np.arange(len(user_ids), dtype=np.int64)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise GlossError(f"users={spec}: neither 'all' nor a file of user ids (one per line)")
    index = {user: i for i, user in enumerate(user_ids)}
    users = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            user = line.strip()
            if not user:
                continue
            if user not in index:
                raise GlossError(f"{path}:{number}: user {user[:80]!r} is not in dataset {dataset}")
            users.append(index[user])
    if not users:
        raise GlossError(f"{path}: no user ids")
    return np.array(users, dtype=np.int64)


def file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identity(run_dir: Path, k: int, chunk_users: int, user_ids: list[str], histories: list[np.ndarray]) -> dict:
    """What a prediction is: the run (its config, item map and weights), k, the chunking, the users and their
    histories. Parts and an `out` written for another identity are never mixed in."""
    return {"run_dir": str(run_dir.resolve()),
            "config_sha256": file_sha256(run_dir / "config_resolved.yaml"),
            "items_sha256": file_sha256(run_dir / "items.tsv"),
            "weights_sha256": file_sha256(run_dir / "model.ckpt"),
            "k": k, "chunk_users": chunk_users, "n_users": len(user_ids),
            "users_sha256": hashlib.sha256("\n".join(user_ids).encode()).hexdigest(),
            "histories_sha256": histories_digest(histories), "history": HISTORY}


def differing(saved: Any, expected: dict) -> list[str]:
    if not isinstance(saved, dict):
        return ["(unreadable)"]
    return sorted(key for key in expected if saved.get(key) != expected[key])


def write_parquet_atomic(frame: Any, path: Path, metadata: dict[str, str] | None = None) -> None:
    """`frame` (a polars DataFrame or LazyFrame, streamed) into `path` through a fresh temp file beside it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~UMASK)  # as a plain create would make it (mkstemp makes 0600)
    os.close(fd)
    try:
        if hasattr(frame, "sink_parquet"):
            frame.sink_parquet(tmp, metadata=metadata)
        else:
            frame.write_parquet(tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def chunk_frame(ranking_items: np.ndarray, ranking_scores: np.ndarray, users: np.ndarray, item_ids: np.ndarray) -> Any:
    """Rows (user, rank, item, score) of one chunk, best first per user; empty slots (-1) are left out."""
    import polars as pl

    n, k = ranking_items.shape
    filled = (ranking_items >= 0).ravel()
    return pl.DataFrame({
        "user": np.repeat(users, k)[filled],
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n)[filled],
        "item": item_ids[np.maximum(ranking_items, 0).ravel()][filled],
        "score": ranking_scores.ravel()[filled].astype(np.float32),
    })


def predict_all(run: Any, run_dir: Path, users_spec: str, out: Path, k: int, chunk_users: int,
                engine: Engine | None) -> dict:
    """Writes `out` for the loaded run `run` of folder `run_dir` (see the module docstring); returns {"out", "users",
    "rows"}."""
    import polars as pl

    split, catalog = run.data.split, run.data.catalog
    users = read_users(users_spec, split.user_ids, run.data.name)
    user_ids = [split.user_ids[u] for u in users]
    histories = [split.sequences[u] for u in users]
    expected = identity(Path(run_dir), k, chunk_users, user_ids, histories)
    out = out.expanduser()
    if out.exists():
        try:
            saved = json.loads(pl.read_parquet_metadata(out).get(METADATA_KEY, "null"))
        except Exception:
            saved = None
        if (keys := differing(saved, expected)):
            raise GlossError(f"out={out}: exists and holds another prediction (differs in {', '.join(keys)}); "
                             "remove it or choose another out")
        rows = pl.scan_parquet(out).select(pl.len()).collect().item()
        log.info("predict: %s already holds this prediction (%d rows); nothing to do", out, rows)
        return {"out": str(out), "users": len(users), "rows": rows}

    parts = out.with_name(out.name + ".parts")
    manifest = parts / MANIFEST
    if parts.is_dir() and manifest.is_file():
        try:
            saved = json.loads(manifest.read_text())
        except ValueError:
            saved = None
        if (keys := differing(saved, expected)):
            raise GlossError(f"{parts}: parts of another prediction (differs in {', '.join(keys)}); remove the folder "
                             "or choose another out")
    else:
        parts.mkdir(exist_ok=True)
        write_atomic(manifest, json.dumps(expected, indent=1) + "\n")

    item_ids = np.asarray(catalog.item_ids)
    user_array = np.asarray(user_ids)
    starts = range(0, len(users), chunk_users)
    names = [parts / f"part-{i:06d}.parquet" for i in range(len(starts))]
    done = sum(name.is_file() for name in names)
    if done:
        log.info("predict: resuming: %d of %d chunks already written in %s", done, len(names), parts)
    log.info("predict: top-%d of %d users (history: %s) in %d chunks of %d into %s", k, len(users), HISTORY,
             len(names), chunk_users, out)
    pending = sum(min(s + chunk_users, len(users)) - s for s, name in zip(starts, names) if not name.is_file())
    t0, ranked = time.perf_counter(), 0
    for i, start in enumerate(starts):
        if names[i].is_file():
            continue
        stop = min(start + chunk_users, len(users))
        ranking = rank_users(run.model, histories[start:stop], k, engine)
        write_parquet_atomic(chunk_frame(ranking.items, ranking.scores, user_array[start:stop], item_ids), names[i])
        ranked += stop - start
        elapsed = time.perf_counter() - t0
        log.info("predict: chunk %d/%d written (%d users; %.1f users/s, ETA %s)", i + 1, len(names), stop - start,
                 ranked / elapsed, format_duration((pending - ranked) * elapsed / ranked))
    t1 = time.perf_counter()
    write_parquet_atomic(pl.scan_parquet([str(n) for n in names]), out,
                         metadata={METADATA_KEY: json.dumps(expected, sort_keys=True)})
    shutil.rmtree(parts)
    rows = pl.scan_parquet(out).select(pl.len()).collect().item()
    log.info("predict: %d rows of %d users merged into %s in %.1fs", rows, len(users), out, time.perf_counter() - t1)
    return {"out": str(out), "users": len(users), "rows": rows}
