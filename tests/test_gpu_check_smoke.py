"""benchmarks/gpu_llama_check.sh --tiny: the GPU check's steps (random Llama -> the 1B preset end to end with run.py ->
metrics.json; the probes' training step and generation batch) on a CPU with a tiny model, so the script a GPU session
runs is known to work before the GPU is lent."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_llama_check_tiny(tiny_root: Path, tmp_path: Path):
    env = {**os.environ, "PYTHON": sys.executable, "DATASET": "tiny", "GLOSS_DATA_DIR": str(tiny_root),
           "GLOSS_CACHE_DIR": str(tmp_path / "cache"), "CHECK_DIR": str(tmp_path / "check"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "benchmarks/gpu_llama_check.sh", "--tiny"], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=600)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    runs = list((tmp_path / "check" / "tiny").glob("run_*/metrics.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["n_users"] == 20
    assert "tokens/s" in out.split("== 2.")[0]  # run.log's training rate (padding-free batches counted)
    assert "test: ranked 20 users" in out and "metrics.json:" in out
    assert "tiny train: 4 x 64 tokens per step (padding-free" in out and "tiny generate:" in out and "users/s" in out
    assert "padded + gradient checkpointing (before)" in out and "model.generate with 16 users per batch (before)" in out
    print(f"gpu_llama_check.sh --tiny: {seconds:.0f}s")  # the docstring's < 60 s is on an idle machine
