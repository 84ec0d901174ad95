"""Progress lines outside ranking (issue 25 item 4): text encoding logs at least every interval, data loading one line
per stage, both reaching run.log through the "gloss" logger."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

import gloss.progress
from gloss.retrieval.encoders import encode_texts
from tests.data.test_table import dataset
from tests.data.fixtures import write_table_csv


class FakeEncoder:
    """sentence-transformers' encode: a text's embedding is (len, first char code), normalised; records batches."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def encode(self, texts, batch_size, normalize_embeddings, convert_to_numpy, show_progress_bar):
        assert normalize_embeddings and convert_to_numpy and not show_progress_bar and len(texts) <= batch_size
        self.batches.append(list(texts))
        emb = np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float64).reshape(len(texts), 2)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def test_encoding_logs_progress_and_keeps_each_text_in_its_row(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="gloss")
    monkeypatch.setattr(gloss.progress, "DEFAULT_INTERVAL_S", 0.0)  # a line per batch
    texts = [f"{chr(97 + i % 26)}{'x' * (i % 7)}" for i in range(25)]
    model = FakeEncoder()
    emb = encode_texts(model, texts, batch_size=10, what="catalog")
    want = np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)
    np.testing.assert_allclose(emb, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-6)
    assert emb.dtype == np.float32
    assert [len(b) for b in model.batches] == [10, 10, 5]
    assert [len(t) for b in model.batches for t in b] == sorted((len(t) for t in texts), reverse=True)  # longest first
    lines = [r.getMessage() for r in caplog.records if r.name == "gloss.progress"]
    assert [re.match(r"encoding catalog texts: (\d+)/25 texts", m).group(1) for m in lines] == ["10", "20", "25"]
    assert encode_texts(model, [], 10, "query").shape[0] == 0


def test_dataset_build_logs_each_stage_with_its_time(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger="gloss")
    write_table_csv(tmp_path, "mydata")
    dataset(tmp_path, tmp_path / "cache", "dataset=table", "dataset.name=mydata")
    lines = [r.getMessage() for r in caplog.records if r.name == "gloss.data.dataset"]
    for stage in (r"read \d+ interactions, \d+ item texts", r"\d+ user sequences over \d+ items",
                  r"leave_one_out split"):
        assert any(re.fullmatch(rf"dataset mydata: {stage} \(\d+\.\ds\)", m) for m in lines), (stage, lines)
