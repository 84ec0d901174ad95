"""A run folder's results: metrics.json (stable schema), per_user.jsonl, results.md, and the console table."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gloss.eval.metrics import Evaluation

METRIC_KEYS = ("recall@5", "ndcg@5", "recall@10", "ndcg@10", "mrr")


def metrics_summary(dataset: str, model: str, retriever: str, split: str, ev: Evaluation) -> dict:
    overall = ev.overall
    return {
        "dataset": dataset,
        "model": model,
        "retriever": retriever,
        "split": split,
        "n_users": int(len(ev.ranks)),
        "overall": {k: overall[k] for k in METRIC_KEYS},
        "segments": {s: {**{k: v[k] for k in METRIC_KEYS}, "n_users": v["n_users"]} for s, v in ev.by_segment().items()},
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


def write_run_outputs(
    run_dir: Path,
    summary: dict,
    ev: Evaluation,
    user_ids: list[str],
    targets: np.ndarray,
    items: np.ndarray,
    item_ids: list[str],
) -> None:
    """Write the three result files; refuses to overwrite an existing metrics.json (one run, one folder)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / f"metrics{'' if summary['split'] == 'test' else '_' + summary['split']}.json"
    if metrics_path.exists():
        raise FileExistsError(f"{metrics_path} exists; results are never overwritten - use a new run folder")
    metrics_path.write_text(json.dumps(summary, indent=2) + "\n")
    with open(run_dir / f"per_user{'' if summary['split'] == 'test' else '_' + summary['split']}.jsonl", "w") as f:
        for u in range(len(user_ids)):
            row = {
                "user_id": user_ids[u],
                "target": item_ids[targets[u]],
                "rank": int(ev.ranks[u]),
                "segment": str(ev.segments[u]),
                **{m: round(float(v[u]), 6) for m, v in ev.per_user.items()},
                "top10": [item_ids[i] for i in items[u, :10] if i >= 0],
            }
            f.write(json.dumps(row) + "\n")
    md = [
        f"# {summary['model']} + {summary['retriever']} on {summary['dataset']} ({summary['split']})",
        "",
        results_table(summary),
        "",
        "Full-catalog ranking; segments by sequence length (cold <= 5, power > 90th percentile).",
    ]
    (run_dir / "results.md").write_text("\n".join(md) + "\n")
