"""Evaluate generations made elsewhere (the GLoSS repository's JSON format) through our retrieval + metrics.

The file is a list of {"reviewer_id", "asin" (target), "seen_asins" (history), "generated_sequences"}.
users=split (default): every entry must match our data (user, history and target); histories asked for later are
looked up by content, so the same file serves whichever split it was generated for.
users=file: the evaluated examples are the file's own (user, cut) pairs, e.g. a GLoSS validation file whose users are
GLoSS's validation sample, not ours; entries that do not fit our data are skipped and counted in the log.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gloss.data import GlossData
from gloss.data.prompts import PromptTemplate
from gloss.data.split import TITLE_FORMAT
from gloss.errors import GlossError
from gloss.models.base import Ranking, Recommender
from gloss.retrieval import Retriever, retrieve_and_fuse

log = logging.getLogger("gloss")
USERS = ("split", "file")


@dataclass
class Generations:
    by_history: dict[bytes, list[str]]  # history (catalog indices, as bytes) -> generated texts
    examples: np.ndarray  # [n, 2] (user, cut) of the matched entries, file order


def is_strings(value: object, non_empty: bool = False) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value) and (bool(value) or not non_empty)


def read_entries(path: Path) -> list[dict]:
    """The file's entries, structure checked; the error names the first bad entry, its key and what was expected."""
    if not path.is_file():
        raise GlossError(f"model.path={path}: no such file")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise GlossError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(entries, list):
        raise GlossError(f"{path}: expected a JSON list of entries (GLoSS generations format), "
                         f"got {type(entries).__name__}")
    for n, e in enumerate(entries):
        where = f"{path}: entry {n}"
        if not isinstance(e, dict):
            raise GlossError(f"{where}: expected an object with reviewer_id, asin, seen_asins, generated_sequences, "
                             f"got {type(e).__name__}")
        missing = {"reviewer_id", "asin", "seen_asins", "generated_sequences"} - set(e)
        if missing:
            raise GlossError(f"{where} (reviewer_id {e.get('reviewer_id')!r}): missing {sorted(missing)}")
        for key in ("reviewer_id", "asin"):
            if not isinstance(e[key], str):
                raise GlossError(f"{where}: {key}: expected a string, got {e[key]!r:.80}")
        if not is_strings(e["seen_asins"]):
            raise GlossError(f"{where}: seen_asins: expected a list of strings (ASINs), got {e['seen_asins']!r:.80}")
        if not is_strings(e["generated_sequences"], non_empty=True):
            raise GlossError(f"{where}: generated_sequences: expected a non-empty list of strings, "
                             f"got {e['generated_sequences']!r:.80}")
    return entries


def load_generations(path: Path, data: GlossData, strict: bool = True) -> Generations:
    """Match each entry to our data by user and prefix (seen_asins + asin). `strict`: a mismatch is an error;
    otherwise the entry is skipped. Duplicates are skipped; the counts are logged."""
    entries = read_entries(path)
    users = {u: i for i, u in enumerate(data.split.user_ids)}
    ids = data.catalog.item_ids
    by_history: dict[bytes, list[str]] = {}
    examples: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    skipped: Counter[str] = Counter()
    for n, e in enumerate(entries):
        u, cut = users.get(e["reviewer_id"]), len(e["seen_asins"])
        if u is None:
            reason = f"unknown user (not in dataset {data.name})"
        elif [ids[i] for i in data.split.sequences[u][: cut + 1]] != [*e["seen_asins"], e["asin"]]:
            reason = f"seen_asins + asin do not match this user's sequence in dataset {data.name}"
        else:
            reason = ""
        if reason and strict:
            raise GlossError(f"{path}: entry {n} (reviewer_id {e['reviewer_id']!r}): {reason}")
        if not reason and (u, cut) in seen:
            reason = "duplicate (same user and seen_asins as an earlier entry)"
        if reason:
            skipped[reason] += 1
            continue
        seen.add((u, cut))
        examples.append((u, cut))
        by_history[data.split.sequences[u][:cut].tobytes()] = list(e["generated_sequences"])
    detail = "; ".join(f"{n} {reason}" for reason, n in skipped.most_common())
    log.info("%s: %d of %d entries matched dataset %s%s", path, len(examples), len(entries), data.name,
             f", skipped {detail}" if detail else "")
    if not strict and not examples:
        raise GlossError(f"{path}: no entry of {len(entries)} matches dataset {data.name} ({detail or 'empty file'})")
    return Generations(by_history, np.array(examples, dtype=np.int64).reshape(-1, 2))


class PrecomputedGenerations(Recommender):
    name = "precomputed"
    uses_retriever = True

    def __init__(self, path: str, retriever: Retriever, query_format: str, fusion: str, retrieval_depth: int,
                 exclude_seen: bool, users: str):
        if users not in USERS:
            raise GlossError(f"model.users={users}: must be one of {', '.join(USERS)} (split: our split's users, every "
                             "entry must match; file: exactly the file's users and cut points)")
        self.path = Path(path).expanduser()
        self.retriever, self.query_format, self.fusion, self.retrieval_depth = retriever, query_format, fusion, retrieval_depth
        self.template = PromptTemplate(item_format=TITLE_FORMAT)  # strips a generated "Title: " prefix
        self.exclude_seen, self.users = exclude_seen, users
        self.generations = Generations({}, np.zeros((0, 2), dtype=np.int64))

    def fit(self, data: GlossData) -> None:
        self.generations = load_generations(self.path, data, strict=self.users == "split")
        self.retriever.index(data.catalog.texts)

    def examples_for(self, split: str, data: GlossData) -> np.ndarray:
        """users=file: the file's matched (user, cut) pairs, whichever split is asked for (after fit)."""
        return self.generations.examples if self.users == "file" else super().examples_for(split, data)

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        rows = [self.generations.by_history.get(np.asarray(h, dtype=np.int64).tobytes()) for h in histories]
        missing = sum(r is None for r in rows)
        if missing:
            raise GlossError(f"{self.path}: no generations for {missing} of {len(rows)} users asked for (was the file "
                             "generated for another split? entries must match the evaluated users' histories; "
                             "model.users=file evaluates the file's own users)")
        queries = [[self.query_format.format(title=self.template.title_of(t)) for t in r] for r in rows]
        # retrieval and fusion are exactly the generator's; only the generation step is replaced by the file
        seen = histories if self.exclude_seen else None
        return Ranking(*retrieve_and_fuse(self.retriever, queries, k, self.fusion, self.retrieval_depth, seen))
