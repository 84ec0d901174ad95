"""W&B extras for a finished run: the segment plot, a table of a few test users' histories and top-5 items,
and the run folder's result files; then the W&B run is closed.

Metrics and config reach W&B through the Lightning WandbLogger (gloss.loggers); for runs without a Trainer
(heuristics, LIS) `logger.experiment` is the same `wandb.init` run. Offline by default
(conf/logger/wandb.yaml); `wandb sync <run folder>/wandb/offline-run-*` uploads later.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import wandb

from gloss.data import GlossData
from gloss.models.base import Recommender
from gloss.report import plot_segments

N_EXAMPLES = 8
HISTORY_SHOWN = 5
RESULT_FILES = ("config_resolved.yaml", "metrics.json", "metrics_val.json", "results.md", "segments.png")


def example_table(
    model: Recommender, data: GlossData, examples: np.ndarray, items: np.ndarray, n: int = N_EXAMPLES, seed: int = 0
) -> wandb.Table:
    """A fixed random sample of evaluated users: recent history, target, top-5, target rank, plus model columns."""
    pick = np.sort(np.random.default_rng(seed).choice(len(examples), min(n, len(examples)), replace=False))
    chosen = examples[pick]
    histories, targets = data.split.histories(chosen), data.split.targets(chosen)
    segments = data.segments()[chosen[:, 0]]
    extra = model.example_columns(histories)
    extra_names = list(dict.fromkeys(name for row in extra for name in row))
    titles = data.catalog.titles
    columns = ["user", "segment", f"history (last {HISTORY_SHOWN})", "target", "top-5", "target rank"] + extra_names
    rows = []
    for j, (h, target) in enumerate(zip(histories, targets)):
        ranked = items[pick[j]]
        hits = np.flatnonzero(ranked == target)
        rows.append(
            [
                data.split.user_ids[chosen[j, 0]],
                str(segments[j]),
                "\n".join(titles[i] for i in h[-HISTORY_SHOWN:]),
                titles[target],
                "\n".join(titles[i] for i in ranked[:5] if i >= 0),
                str(hits[0] + 1) if len(hits) else f"not in top {items.shape[1]}",  # text: one column type
            ]
            + [extra[j].get(name, "") for name in extra_names]
        )
    return wandb.Table(columns=columns, data=rows)


def finish_wandb_run(
    run: "wandb.Run",
    summary: dict,
    run_dir: Path,
    model: Recommender,
    data: GlossData,
    examples: np.ndarray,
    items: np.ndarray,
) -> None:
    """Log the test segment plot, the examples table and the result files, then close the run."""
    if run.settings.mode == "disabled":  # logger.mode=disabled: W&B calls are no-ops, nothing to write
        return
    plot = run_dir / "segments.png"
    plot_segments([summary], plot)
    run.log({"test/segments": wandb.Image(str(plot)), "test/examples": example_table(model, data, examples, items)})
    run.summary.update({"dataset": summary["dataset"], "model": summary["model"], "retriever": summary["retriever"]})
    for name in RESULT_FILES:  # copies, so the offline run folder stands alone (run.save alone would symlink)
        if (run_dir / name).is_file():
            copy = Path(shutil.copy2(run_dir / name, Path(run.dir) / name))
            run.save(str(copy), base_path=run.dir, policy="now")
    run.finish()
