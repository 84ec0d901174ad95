"""A run folder's results: metrics.json (stable schema), per_user.jsonl, results.md, and the console table."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from gloss.eval.metrics import METRIC_KEYS, Evaluation


def metrics_summary(dataset: str, model: str, retriever: str, split: str, ev: Evaluation,
                    training: dict | None = None) -> dict:
    """metrics.json; `training` is how far the model's training went (gloss.training.training_record), null for
    heuristics."""
    overall = ev.overall
    return {
        "dataset": dataset,
        "model": model,
        "retriever": retriever,
        "split": split,
        "n_users": int(len(ev.ranks)),
        "overall": {k: overall[k] for k in METRIC_KEYS},
        "segments": {s: {**{k: v[k] for k in METRIC_KEYS}, "n_users": v["n_users"]} for s, v in ev.by_segment().items()},
        "training": training,
    }


def metric_cells(values: dict, n_users: int) -> str:
    """Four decimals per metric; "–" where no user was evaluated (n=0) or the value is missing."""
    return " | ".join("–" if not n_users or values.get(k) is None else f"{values[k]:.4f}" for k in METRIC_KEYS)


def results_table(summary: dict) -> str:
    head = "| users | n | " + " | ".join(METRIC_KEYS) + " |"
    rows = [head, "|" + "---|" * (len(METRIC_KEYS) + 2)]
    rows.append(f"| all | {summary['n_users']} | {metric_cells(summary['overall'], summary['n_users'])} |")
    for seg, vals in summary["segments"].items():
        rows.append(f"| {seg} | {vals['n_users']} | {metric_cells(vals, vals['n_users'])} |")
    return "\n".join(rows)


def per_user_lines(ev: Evaluation, user_ids: list[str], targets: np.ndarray, items: np.ndarray,
                   item_ids: list[str]) -> list[str]:
    """per_user.jsonl's lines: one JSON object per ranked user."""
    return [json.dumps({
        "user_id": user_ids[u],
        "target": item_ids[targets[u]],
        "rank": int(ev.ranks[u]),
        "segment": str(ev.segments[u]),
        **{m: round(float(v[u]), 6) for m, v in ev.per_user.items()},
        "top10": [item_ids[i] for i in items[u, :10] if i >= 0],
    }) + "\n" for u in range(len(user_ids))]


UMASK = os.umask(0o022)
os.umask(UMASK)


def write_atomic(path: Path, text: str) -> None:
    """Whole or not at all: written to a new, uniquely named temp file beside `path` (created exclusively, so a planted
    file or symlink is never written through), synced, then renamed over `path` (a symlink there is replaced, not
    followed)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # as open() would create it (mkstemp makes 0600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run_outputs(run_dir: Path, summaries: dict[str, dict], per_user: dict[str, list[str]]) -> None:
    """Every split's per_user[_<split>].jsonl and metrics_<split>.json, results.md (a table per split), then
    metrics.json (test) last: it marks a finished run, so an interrupted write never leaves one that looks finished.
    Each file is replaced whole (write_atomic); a run that stopped before metrics.json may write them again."""
    suffix = {split: "" if split == "test" else f"_{split}" for split in summaries}
    for split, lines in per_user.items():
        write_atomic(run_dir / f"per_user{suffix[split]}.jsonl", "".join(lines))
    for split, summary in summaries.items():
        if split != "test":
            write_atomic(run_dir / f"metrics{suffix[split]}.json", json.dumps(summary, indent=2) + "\n")
    md = []
    for split, summary in summaries.items():
        md += [f"# {summary['model']} + {summary['retriever']} on {summary['dataset']} ({split})", "",
               results_table(summary), ""]
    md.append("Full-catalog ranking; segments by sequence length (cold <= 5, power > 90th percentile).")
    write_atomic(run_dir / "results.md", "\n".join(md) + "\n")
    write_atomic(run_dir / "metrics.json", json.dumps(summaries["test"], indent=2) + "\n")
