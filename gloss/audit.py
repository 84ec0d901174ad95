"""Shortcut and leakage audit of a dataset's split: `python -m gloss.audit dataset=beauty [--renumber p5] [--out f.md]`.

Prints one Markdown table of checks, each with a count and its share over the test users (and the validation users
where it applies): targets already in their own history, targets equal to the next unused id (max id in the user's
history + 1) under the file's own item numbering(s) and what a "predict largest id + 1" baseline scores, cold test
items (never in training), duplicate titles, untitled (dropped) items, and timestamp ties (table sources only).

`--renumber p5` re-labels the items 1, 2, ... by order of first appearance in the users' sequences (users in file
order), as the P5 data release does, before the id checks: it shows the shortcut such a release creates.

Every other argument is a Hydra override of conf/config.yaml (composed without a run folder); paths.data_dir and
paths.cache_dir come from GLOSS_DATA_DIR / GLOSS_CACHE_DIR (default <repo>/data, <repo>/.cache) as the config says.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import gloss  # noqa: F401  (registers the config resolvers)
from gloss.data.dataset import GlossData
from gloss.data.split import Catalog
from gloss.eval.metrics import per_user_metrics, target_ranks

REPO = Path(__file__).resolve().parent.parent
RENUMBER = ("none", "p5")
NUMERIC_ID = re.compile(r"^([A-Za-z_]*?)(\d+)$")  # "123", "item_123": numeric or P5-style ids


@dataclass
class Row:
    check: str
    split: str  # "test", "val" or "" (a catalog-level count)
    count: int | None  # None: not known
    total: int | None  # the share's denominator; None: no share
    note: str = ""

    def cells(self) -> list[str]:
        count = "not known" if self.count is None else f"{self.count:,}"
        share = "" if self.count is None or not self.total else f"{self.count / self.total:.2%}"
        return [self.check, self.split or "-", count, share or "-", self.note]


# ----------------------------------------------------------------------------------------------------------- numberings
def p5_renumbered(data: GlossData) -> GlossData:
    """The data with items re-labelled "1", "2", ... by first appearance in the users' sequences (users in order): the
    P5 release's numbering. Item indices (and so every sequence and split) are unchanged; only the ids change."""
    order = first_appearance(data.split.sequences, len(data.catalog))
    ids = [str(int(order[i]) + 1) for i in range(len(data.catalog))]
    return replace(data, catalog=Catalog(ids, list(data.catalog.titles)), name=f"{data.name} (P5 renumbered)")


def first_appearance(sequences: list[np.ndarray], n_items: int) -> np.ndarray:
    """Per item index: its rank by first appearance over `sequences` in order (items never seen: after all others)."""
    rank = np.full(n_items, -1, dtype=np.int64)
    nxt = 0
    for s in sequences:
        for i in s.tolist():
            if rank[i] < 0:
                rank[i] = nxt
                nxt += 1
    unseen = rank < 0
    rank[unseen] = np.arange(nxt, nxt + int(unseen.sum()))
    return rank


def numeric_ids(item_ids: list[str]) -> np.ndarray | None:
    """The ids' own numbers when every id is numeric or P5-style (one shared prefix + digits) and they are distinct."""
    matches = [NUMERIC_ID.match(i) for i in item_ids]
    if not item_ids or not all(matches) or len({m.group(1) for m in matches}) != 1:  # type: ignore[union-attr]
        return None
    numbers = np.array([int(m.group(2)) for m in matches], dtype=np.int64)  # type: ignore[union-attr]
    return numbers if len(np.unique(numbers)) == len(numbers) else None


def numberings(data: GlossData, file_order: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Item numberings to test the next-id shortcut under: first appearance in the file (`file_order`, per item index;
    default: the catalog's own order, which is first appearance in the sequences file), and the ids' own numbers when
    they are numeric or P5-style."""
    out = {"first appearance in the file": np.arange(len(data.catalog)) if file_order is None else file_order}
    numbers = numeric_ids(data.catalog.item_ids)
    if numbers is not None:
        out["the ids' own numbers"] = numbers
    return out


def next_id_predictions(histories: list[np.ndarray], number: np.ndarray) -> np.ndarray:
    """Per history: the item index whose number is (largest number in the history + 1); -1 when no item has it."""
    index_of = {int(n): i for i, n in enumerate(number.tolist())}
    return np.array([index_of.get(int(number[h].max()) + 1, -1) if len(h) else -1 for h in histories], dtype=np.int64)


def next_id_baseline(histories: list[np.ndarray], targets: np.ndarray, number: np.ndarray) -> dict[str, float]:
    """Recall@5 / NDCG@5 of ranking the (largest id + 1) item first, then nothing."""
    predicted = next_id_predictions(histories, number)
    metrics = per_user_metrics(target_ranks(predicted[:, None], targets), ks=(5,))
    return {m: float(v.mean()) if len(v) else 0.0 for m, v in metrics.items() if m != "mrr"}


# ---------------------------------------------------------------------------------------------------------------- checks
def audit(data: GlossData, *, file_order: np.ndarray | None = None, dropped_items: int | None = None,
          tie_pairs: tuple[int, int] | None = None) -> list[Row]:
    """The checks on `data` (GlossData, already renumbered if wanted). `file_order`: each item's rank by first
    appearance in the input file (default: catalog order); `dropped_items`: untitled items the reader dropped (None:
    0); `tie_pairs`: (consecutive same-user interaction pairs with equal timestamps, all such pairs), None: no
    timestamps."""
    split = data.split
    stages = {"test": split.test_examples()}
    if len(split.val_users):
        stages["val"] = split.val_examples()
    hist = {s: split.histories(e) for s, e in stages.items()}
    tgt = {s: split.targets(e) for s, e in stages.items()}
    n = {s: len(e) for s, e in stages.items()}
    rows: list[Row] = []

    for s in stages:
        repeat = sum(int(t in set(h.tolist())) for h, t in zip(hist[s], tgt[s]))
        rows.append(Row("target already in the user's own history", s, repeat, n[s]))

    for name, number in numberings(data, file_order).items():
        for s in stages:
            hit = next_id_predictions(hist[s], number) == tgt[s]
            base = next_id_baseline(hist[s], tgt[s], number)
            rows.append(Row(f"target = largest id in history + 1 ({name})", s, int(hit.sum()), n[s],
                            f"baseline \"predict largest id + 1\": Recall@5 {base['recall@5']:.4f}, "
                            f"NDCG@5 {base['ndcg@5']:.4f}"))
        for s in stages:
            above = sum(int(number[t] > number[h].max()) for h, t in zip(hist[s], tgt[s].tolist()) if len(h))
            rows.append(Row(f"target id above every id in history ({name})", s, above, n[s]))

    train_counts = np.bincount(np.concatenate(split.train_sequences() or [np.zeros(0, np.int64)]),
                               minlength=len(data.catalog))
    for s in stages:
        cold = train_counts[tgt[s]] == 0
        rows.append(Row("target never seen in training (cold item)", s, int(cold.sum()), n[s],
                        f"{len(np.unique(tgt[s][cold])):,} distinct cold items"))

    titles = np.array([t.strip().lower() for t in data.catalog.titles], dtype=object)
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(titles.tolist()):
        if t:
            groups.setdefault(t, []).append(i)
    shared = {t: g for t, g in groups.items() if len(g) > 1}
    in_dup = sum(len(g) for g in shared.values())
    rows.append(Row("items sharing their title with another item", "", in_dup, len(data.catalog),
                    f"{len(shared):,} titles shared (case and surrounding spaces ignored)"))
    for s in stages:
        twin = sum(int(any(j != t and titles[j] == titles[t] for j in set(h.tolist())))
                   for h, t in zip(hist[s], tgt[s].tolist()) if titles[t] in shared)
        rows.append(Row("target has a same-title twin (another item) in the history", s, twin, n[s]))

    empty = sum(int(not t.strip()) for t in data.catalog.titles)
    rows.append(Row("catalog items with an empty title", "", empty, len(data.catalog)))
    rows.append(Row("untitled items dropped by preprocessing", "", dropped_items or 0, None,
                    "from the input files" if dropped_items is not None else "not counted by the reader: 0"))

    if tie_pairs is None:
        rows.append(Row("consecutive interactions of a user with equal timestamps", "", None, None,
                        "no timestamps in this source (Amazon 2014 offline files give sequences only)"))
    else:
        rows.append(Row("consecutive interactions of a user with equal timestamps", "", tie_pairs[0], tie_pairs[1],
                        "share of consecutive pairs; ties keep the file's row order"))
    return rows


def markdown(rows: list[Row], title: str = "") -> str:
    head = ["check", "split", "count", "share", "note"]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- source-level extras
def source_facts(node: Any, data: GlossData) -> dict[str, Any]:
    """What only the input files tell: untitled items dropped, timestamp ties, first-appearance order in the file (table
    sources: rows; offline: the catalog order already is). Empty where the source is not read again here."""
    from gloss.data.dataset import plain
    from gloss.data.readers import read_offline
    from gloss.data.split import build_sequences
    from gloss.data.table import read_table_source

    source = node.get("source", "offline")
    root = Path(str(node.data_dir)).expanduser()
    facts: dict[str, Any] = {}
    if source == "offline":
        raw = read_offline(root / "amazon2014" / str(node.name), bool(node.get("strict", True)))
        seen = {i for seq in raw.sequences.values() for i in seq}
        facts["dropped_items"] = sum(1 for i in seen if not (raw.titles.get(i) or "").strip())
    elif source == "table":
        folder = node.get("folder") or node.name
        events = read_table_source(root / Path(str(folder)).expanduser(), plain(node.interactions),
                                   plain(node.get("items")), bool(node.get("strict", True)))
        texts = events.texts.filter(events.texts["text"].is_not_null() & (events.texts["text"] != ""))
        titled = set(texts["item"].to_list())
        facts["dropped_items"] = len(set(events.frame["item"].unique().to_list()) - titled)
        position = {item: k for k, item in enumerate(events.frame.sort("row")["item"].unique(maintain_order=True)
                                                     .to_list())}
        order = np.array([position[i] for i in data.catalog.item_ids], dtype=np.int64)
        facts["file_order"] = np.argsort(np.argsort(order))  # ranks among the kept items
        if events.time_unit is not None:
            seqs = build_sequences(events, int(node.get("min_user_interactions", 3)), node.get("k_core"))
            diffs = [np.diff(t) for t in (seqs.times or []) if len(t) > 1]
            pairs = sum(len(d) for d in diffs)
            facts["tie_pairs"] = (int(sum(int((d == 0).sum()) for d in diffs)), pairs)
    return facts


def compose_config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    paths = []
    if "paths.data_dir" not in given:
        paths.append(f"paths.data_dir={os.environ.get('GLOSS_DATA_DIR', str(REPO / 'data'))}")
    if "paths.cache_dir" not in given:
        paths.append(f"paths.cache_dir={os.environ.get('GLOSS_CACHE_DIR', str(REPO / '.cache'))}")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=paths + list(overrides))


def run(overrides: list[str], renumber: str = "none") -> str:
    from hydra.utils import instantiate

    cfg = compose_config(overrides)
    data: GlossData = instantiate(cfg.dataset)
    facts = source_facts(cfg.dataset, data)
    file_order = facts.get("file_order")
    if renumber == "p5":
        data = p5_renumbered(data)
        file_order = None  # the new ids are the order of first appearance; the catalog order is unchanged
    rows = audit(data, file_order=file_order, dropped_items=facts.get("dropped_items"),
                 tie_pairs=facts.get("tie_pairs"))
    stats = data.stats()
    title = (f"{data.name}: {stats['users']:,} users, {stats['items']:,} items, {stats['interactions']:,} "
             f"interactions, {stats['test_examples']:,} test users, {stats['val_users']:,} validation users")
    return markdown(rows, title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gloss.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/config.yaml, e.g. dataset=beauty")
    parser.add_argument("--renumber", choices=RENUMBER, default="none",
                        help="p5: re-label items by order of first appearance in the users' sequences first")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    table = run(args.overrides, args.renumber)
    sys.stdout.write(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
