"""Evaluate generations made elsewhere (the GLoSS repository's JSON format) through our retrieval + metrics.

The file is a list of {"reviewer_id", "asin" (target), "seen_asins" (history), "generated_sequences"}.
Each entry is matched to our split by user and checked against its history; histories asked for later are
looked up by content, so the same file serves whichever split it was generated for.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from gloss.data import GlossData
from gloss.data.prompts import PromptTemplate
from gloss.errors import GlossError
from gloss.models.base import Ranking, Recommender
from gloss.models.generator import retrieve_and_fuse
from gloss.retrieval import Retriever


def load_generations(path: Path, data: GlossData) -> dict[bytes, list[str]]:
    """history (catalog indices, as bytes) -> generated texts; errors name the entry that does not fit."""
    if not path.is_file():
        raise GlossError(f"model.path={path}: no such file")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise GlossError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    users = {u: i for i, u in enumerate(data.split.user_ids)}
    out: dict[bytes, list[str]] = {}
    for n, e in enumerate(entries):
        where = f"{path}: entry {n} (reviewer_id {e.get('reviewer_id')!r})"
        missing = {"reviewer_id", "asin", "seen_asins", "generated_sequences"} - set(e)
        if missing:
            raise GlossError(f"{where}: missing {sorted(missing)}")
        if e["reviewer_id"] not in users:
            raise GlossError(f"{where}: unknown user (not in dataset {data.name})")
        seq = data.split.sequences[users[e["reviewer_id"]]]
        cut = len(e["seen_asins"])
        ids = data.catalog.item_ids
        if cut >= len(seq) or [ids[i] for i in seq[: cut + 1]] != [*e["seen_asins"], e["asin"]]:
            raise GlossError(f"{where}: seen_asins + asin do not match this user's sequence in dataset {data.name}")
        out[seq[:cut].tobytes()] = list(e["generated_sequences"])
    return out


class PrecomputedGenerations(Recommender):
    name = "precomputed"
    uses_retriever = True

    def __init__(self, path: str, retriever: Retriever, query_format: str = "Title: {title}", fusion: str = "top1_per_query",
                 retrieval_depth: int = 20, exclude_seen: bool = False):
        self.path = Path(path).expanduser()
        self.retriever, self.query_format, self.fusion, self.retrieval_depth = retriever, query_format, fusion, retrieval_depth
        self.template = PromptTemplate(item_format="Title: {title}")  # strips a generated "Title: " prefix
        self.exclude_seen = exclude_seen
        self.generations: dict[bytes, list[str]] = {}

    def fit(self, data: GlossData) -> None:
        self.generations = load_generations(self.path, data)
        self.retriever.index(data.catalog.texts)

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> Ranking:
        rows = [self.generations.get(np.asarray(h, dtype=np.int64).tobytes()) for h in histories]
        missing = sum(r is None for r in rows)
        if missing:
            raise GlossError(f"{self.path}: no generations for {missing} of {len(rows)} users asked for (was the file "
                             "generated for another split? entries must match the evaluated users' histories)")
        queries = [[self.query_format.format(title=self.template.title_of(t)) for t in r] for r in rows]
        # retrieval and fusion are exactly the generator's; only the generation step is replaced by the file
        return retrieve_and_fuse(self.retriever, queries, histories, k, self.fusion, self.retrieval_depth, self.exclude_seen)
