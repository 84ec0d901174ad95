"""GlossData.files: the sha256 of every data file load_dataset read, the same whether the data was built or came from
the cache (also from an entry written before the field existed), and computed once with the cache key unchanged."""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from hydra.utils import instantiate

from gloss.cache import content_key, file_digest
from gloss.data.dataset import digests_key
from tests.conftest import TINY, composed

TINY_FILES = ("amazon2014/tiny/item_titles.tsv", "amazon2014/tiny/user_sequence.txt")


def load_tiny(data_root: Path, cache: Path):
    return instantiate(composed(*TINY, f"paths.data_dir={data_root}", f"paths.cache_dir={cache}").dataset)


def test_files_hold_the_sha256_of_each_input_file_built_and_cached(tiny_root, tmp_path):
    expected = {name: hashlib.sha256((tiny_root / name).read_bytes()).hexdigest() for name in TINY_FILES}
    built = load_tiny(tiny_root, tmp_path / "cache")
    assert built.files == expected
    assert built.held_out().files == expected
    (entry,) = (tmp_path / "cache" / "data").glob("tiny-*.pkl")
    cached = load_tiny(tiny_root, tmp_path / "cache")
    assert cached.files == expected and list((tmp_path / "cache" / "data").glob("tiny-*.pkl")) == [entry]

    old = pickle.loads(entry.read_bytes())  # an entry written before GlossData.files existed
    del old.files
    entry.write_bytes(pickle.dumps(old))
    assert load_tiny(tiny_root, tmp_path / "cache").files == expected
    assert list((tmp_path / "cache" / "data").glob("tiny-*.pkl")) == [entry]  # same key: the entry is reused


def test_the_key_from_digests_equals_content_key(tiny_root):
    files = [tiny_root / name for name in TINY_FILES]
    parts = ("gloss-data-v4", "tiny", None, True, {"file": "x"}, 0.05)
    assert digests_key(*parts, digests=[file_digest(f) for f in files]) == content_key(*parts, files=files)
    assert digests_key(*parts, digests=[]) == content_key(*parts)
