"""Bad inputs and bad caches: one clear line for what the user can fix, a rebuild for what gloss can fix itself, and
no cache entry reused when what it was built from (weights, parse mode) has changed."""
from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from gloss.data import load_dataset
from gloss.data.readers import read_offline, read_official
from gloss.errors import DataFormatError, GlossError
from gloss.retrieval.dense import DenseRetriever
from tests.models.factory import make_retriever
from tests.conftest import TINY, composed, run_cli


def run_tiny(args: list[str], data_root: Path, tmp_path: Path):
    """run.py on the tiny dataset into tmp_path/run, caching under tmp_path/cache."""
    return run_cli("run.py", [*TINY, *args, f"hydra.run.dir={tmp_path / 'run'}"], data_root, tmp_path / "cache")


def assert_refused_before_work(proc, run_dir: Path, *needles: str) -> None:
    """Exit 2, one stderr line naming the key, and nothing loaded, built or trained."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert all(n in lines[0] for n in needles), lines[0]
    assert not (run_dir / "config_resolved.yaml").exists() and not (run_dir / "checkpoints").exists()
    log = (run_dir / "run.log").read_text() if (run_dir / "run.log").exists() else ""
    assert "dataset tiny" not in log and "epoch" not in log


# --- 4: a local encoder folder is keyed by its contents, not its path -------------------------------------------


class CountingEncoder:
    """Stands in for SentenceTransformer: embeddings that depend on the folder's weights, and a call count."""

    def __init__(self, folder: Path):
        self.folder, self.calls = folder, 0

    def encode(self, texts, **_):
        self.calls += 1
        seed = int.from_bytes((self.folder / "model.safetensors").read_bytes()[:4], "little")
        rng = np.random.default_rng(seed)
        emb = rng.normal(size=(len(texts), 4)).astype(np.float32)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def dense_with_fake_encoder(folder: Path, cache: Path) -> tuple[DenseRetriever, CountingEncoder]:
    retriever = make_retriever("dense", encoder=str(folder), cache_dir=str(cache))
    retriever._model = fake = CountingEncoder(folder)
    return retriever, fake


def test_local_encoder_folder_changed_weights_are_not_served_from_cache(tmp_path: Path):
    import gloss.retrieval.encoders as encoders

    folder = tmp_path / "my_encoder"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\x01\x00\x00\x00" + b"w" * 100)
    texts = ["Title: red lipstick", "Title: blue shampoo"]
    first, fake = dense_with_fake_encoder(folder, tmp_path / "cache")
    old = first.embed(texts, "", "catalog")
    again, fake_again = dense_with_fake_encoder(folder, tmp_path / "cache")
    assert np.array_equal(again.embed(texts, "", "catalog"), old) and fake_again.calls == 0  # unchanged: cached

    stat = weights.stat()
    weights.write_bytes(b"\x02\x00\x00\x00" + b"w" * 100)  # same size ...
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and same mtime: only the bytes differ
    getattr(encoders, "_FOLDER_DIGESTS", {}).clear()  # as in a new process
    changed, fake_changed = dense_with_fake_encoder(folder, tmp_path / "cache")
    new = changed.embed(texts, "", "catalog")
    assert fake_changed.calls == 1 and not np.array_equal(new, old)


# --- 5: a corrupted cache entry is deleted and rebuilt ------------------------------------------------------------


def test_truncated_embedding_cache_is_rebuilt_with_a_warning(tmp_path: Path, caplog):
    folder = tmp_path / "enc"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\x07\x00\x00\x00")
    texts = ["Title: a", "Title: b", "Title: c"]
    first, _ = dense_with_fake_encoder(folder, tmp_path / "cache")
    emb = first.embed(texts, "", "catalog")
    [entry] = (tmp_path / "cache" / "embeddings").glob("*.npy")
    entry.write_bytes(entry.read_bytes()[:-10])
    second, fake = dense_with_fake_encoder(folder, tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        assert np.array_equal(second.embed(texts, "", "catalog"), emb)
    assert fake.calls == 1
    assert any(r.levelno == logging.WARNING and str(entry) in r.getMessage() for r in caplog.records)
    assert np.array_equal(np.load(entry), emb)  # rewritten whole


def test_truncated_dataset_cache_is_rebuilt_with_a_warning(tiny_root: Path, tmp_path: Path, caplog):
    first = load_dataset("tiny", str(tiny_root), str(tmp_path / "cache"))
    [entry] = (tmp_path / "cache" / "data").glob("*.pkl")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        again = load_dataset("tiny", str(tiny_root), str(tmp_path / "cache"))
    assert again.stats() == first.stats()
    assert any(r.levelno == logging.WARNING and str(entry) in r.getMessage() for r in caplog.records)
    assert load_dataset("tiny", str(tiny_root), str(tmp_path / "cache")).stats() == first.stats()  # rewritten whole


def test_truncated_tokenizer_cache_is_rebuilt_with_a_warning(tmp_path: Path, caplog):
    from gloss.models.scratch_lm import title_tokenizer

    titles = ["red lipstick matte", "blue shampoo for curly hair", "waterproof black mascara"] * 5
    first = title_tokenizer(titles, 300, tmp_path)
    [entry] = (tmp_path / "tokenizers").glob("*.json")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        again = title_tokenizer(titles, 300, tmp_path)
    assert again("red mascara").input_ids == first("red mascara").input_ids
    assert any(r.levelno == logging.WARNING and str(entry) in r.getMessage() for r in caplog.records)


# --- 6: non-UTF-8 input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_name", ["user_sequence.txt", "item_titles.tsv"])
@pytest.mark.parametrize("bad", [b"\xff", b"\x00\x01\x02\xfe\xfa\x00"], ids=["one_bad_byte", "binary"])
def test_non_utf8_line_is_one_error_naming_file_and_line(tiny_root: Path, file_name: str, bad: bytes):
    path = tiny_root / "amazon2014" / "tiny" / file_name
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(3, b"U9999 B00001 B0" + bad + b"02 B00003\n" if file_name == "user_sequence.txt"
                 else b"B77777\tcaf" + bad + b" lotion\n")
    path.write_bytes(b"".join(lines))
    with pytest.raises(DataFormatError) as e:
        read_offline(path.parent)
    message = str(e.value)
    assert message.startswith(f"{path}:4: ") and "UTF-8" in message and "\n" not in message
    assert "lotion" not in message and "B00003" not in message  # the file's contents are not dumped
    raw = read_offline(path.parent, strict=False)
    assert raw.skipped[file_name] == 1
    assert "U9999" not in raw.sequences and "B77777" not in raw.titles


def test_non_utf8_official_files(tmp_path: Path):
    with gzip.open(tmp_path / "reviews_Beauty_5.json.gz", "wb") as f:
        f.write(json.dumps({"reviewerID": "u1", "asin": "a", "unixReviewTime": 1}).encode() + b"\n")
        f.write(b'{"reviewerID": "u\xff", "asin": "a", "unixReviewTime": 2}\n')
    with gzip.open(tmp_path / "meta_Beauty.json.gz", "wb") as f:
        f.write(str({"asin": "a", "title": "Alpha"}).encode() + b"\n")
    with pytest.raises(DataFormatError, match=r"reviews_Beauty_5.json.gz:2: .*UTF-8"):
        read_official(tmp_path, "Beauty")
    raw = read_official(tmp_path, "Beauty", strict=False)
    assert raw.sequences == {"u1": ["a"]} and raw.skipped["reviews_Beauty_5.json.gz"] == 1


@pytest.mark.slow
def test_non_utf8_through_the_cli_is_one_line(tiny_root: Path, tmp_path: Path):
    path = tiny_root / "amazon2014" / "tiny" / "item_titles.tsv"
    path.write_bytes(path.read_bytes() + b"B77777\t\xc3\x28 broken\n")
    proc = run_tiny(["model=popularity"], tiny_root, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and f"{path}:43: " in proc.stderr


# --- 9: the parsed-data cache is keyed by everything that shapes it -------------------------------------------------


def test_strict_run_does_not_reuse_a_lenient_parse(tiny_root: Path, tmp_path: Path):
    path = tiny_root / "amazon2014" / "tiny" / "user_sequence.txt"
    path.write_text(path.read_text() + "ORPHAN\n")
    lenient = load_dataset("tiny", str(tiny_root), str(tmp_path / "cache"), strict=False)
    assert lenient.skipped["user_sequence.txt"] == 1
    with pytest.raises(DataFormatError, match=f"{path}:61: "):
        load_dataset("tiny", str(tiny_root), str(tmp_path / "cache"), strict=True)


# --- 10: duplicate ASINs in item_titles.tsv -------------------------------------------------------------------------


def test_duplicate_asin_with_another_title_is_an_error_or_skipped(tiny_root: Path):
    path = tiny_root / "amazon2014" / "tiny" / "item_titles.tsv"
    first_line = path.read_text().splitlines()[1]  # line 2: B00000
    asin, title = first_line.split("\t")
    path.write_text(path.read_text() + f"{asin}\t{title}\n" + f"{asin}\tsomething else\n")
    with pytest.raises(DataFormatError) as e:
        read_offline(path.parent)
    assert str(e.value).startswith(f"{path}:44: ") and asin in str(e.value) and "line 2" in str(e.value)
    raw = read_offline(path.parent, strict=False)
    assert raw.titles[asin] == title  # the first row wins, as for duplicate users
    assert raw.skipped["item_titles.tsv"] == 1  # the identical repeat (line 43) is tolerated, not counted


def test_duplicate_asin_with_another_title_in_official_metadata(tmp_path: Path):
    with gzip.open(tmp_path / "reviews_Beauty_5.json.gz", "wb") as f:
        f.write(json.dumps({"reviewerID": "u1", "asin": "a", "unixReviewTime": 1}).encode() + b"\n")
    with gzip.open(tmp_path / "meta_Beauty.json.gz", "wb") as f:
        for title in ("Alpha", "Alpha", "Beta"):
            f.write(str({"asin": "a", "title": title}).encode() + b"\n")
    with pytest.raises(DataFormatError, match=r"meta_Beauty.json.gz:3: .*line 1"):
        read_official(tmp_path, "Beauty")
    raw = read_official(tmp_path, "Beauty", strict=False)
    assert raw.titles == {"a": "Alpha"} and raw.skipped["meta_Beauty.json.gz"] == 1


# --- 7, 8: config validation, in one place, before any work ---------------------------------------------------------

BAD_SETTINGS = [
    ("dataset.min_user_interactions=1", "dataset.min_user_interactions"),
    ("dataset.min_user_interactions=2", "dataset.min_user_interactions"),
    ("dataset.min_user_interactions=abc", "dataset.min_user_interactions"),
    ("dataset.val_fraction=1.5", "dataset.val_fraction"),
    ("dataset.val_fraction=-0.1", "dataset.val_fraction"),
    ("dataset.val_fraction=abc", "dataset.val_fraction"),
    ("eval.k=abc", "eval.k"),
    ("eval.k=0", "eval.k"),
    ("eval.k=1.5", "eval.k"),
    ("eval.k=-5", "eval.k"),
    ("eval.k=3", "eval.k"),
    ("eval.k=true", "eval.k"),
    ("eval.max_users=0", "eval.max_users"),
    ("eval.max_users=true", "eval.max_users"),
    ("eval.val=maybe", "eval.val"),
    ("optimized_metric=test/ndcg@5", "optimized_metric"),
    ("optimized_metric=val/auc", "optimized_metric"),
    ("dataset.strict=maybe", "dataset.strict"),
    ("dataset.power_percentile=150", "dataset.power_percentile"),
]


@pytest.mark.parametrize("override,key", BAD_SETTINGS, ids=[o for o, _ in BAD_SETTINGS])
def test_bad_setting_is_refused_naming_the_key_and_the_allowed_range(override: str, key: str):
    from gloss.validation import validate_config

    cfg = composed(*TINY, "model=cooc", override)
    with pytest.raises(GlossError) as e:
        validate_config(cfg)
    assert str(e.value).startswith(f"{key}=") and "must be" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides", [
    ["model=sasrec", "dataset.val_fraction=0"],
    ["model=cooc", "dataset.val_fraction=0", "eval.val=true"],
    ["model=cooc", "dataset.val_fraction=0", "optimized_metric=val/mrr"],
])
def test_no_validation_users_is_refused_where_they_are_needed(overrides: list[str]):
    from gloss.validation import validate_config

    with pytest.raises(GlossError, match=r"^dataset.val_fraction=0"):
        validate_config(composed(*TINY, *overrides))


@pytest.mark.parametrize("overrides", [
    ["model=cooc"],
    ["model=cooc", "dataset.val_fraction=0"],  # a heuristic needs no validation users
    ["model=sasrec", "dataset.val_fraction=0", "train=false"],
    ["model=sasrec", "dataset.val_fraction=1", "eval.k=10", "eval.max_users=5", "optimized_metric=val/ndcg@10"],
])
def test_good_settings_pass(overrides: list[str]):
    from gloss.validation import validate_config

    validate_config(composed(*TINY, *overrides))


@pytest.mark.slow
def test_val_fraction_out_of_range_exits_2_before_any_work(tiny_root: Path, tmp_path: Path):
    proc = run_tiny(["model=sasrec", "dataset.val_fraction=1.5"], tiny_root, tmp_path)
    assert_refused_before_work(proc, tmp_path / "run", "dataset.val_fraction=1.5", "0")


@pytest.mark.slow
def test_trained_model_without_validation_users_exits_2_before_training(tiny_root: Path, tmp_path: Path):
    proc = run_tiny(["model=sasrec", "trainer.max_epochs=1", "dataset.val_fraction=0"], tiny_root, tmp_path)
    assert_refused_before_work(proc, tmp_path / "run", "dataset.val_fraction=0")


@pytest.mark.slow
def test_eval_k_abc_exits_2_before_any_work(tiny_root: Path, tmp_path: Path):
    proc = run_tiny(["model=cooc", "eval.k=abc"], tiny_root, tmp_path)
    assert_refused_before_work(proc, tmp_path / "run", "eval.k='abc'", ">= 10")
