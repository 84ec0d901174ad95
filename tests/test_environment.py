"""gloss.environment: the record's keys and types, git state outside a checkout or without git, and environment.json
in each run folder (a resume's beside the first attempt's; eval.py's in its own folder)."""
from __future__ import annotations

import hashlib
import json
import re

import torch

from gloss.environment import THREAD_VARIABLES, environment, git_state, write_environment
from gloss.experiment import run_experiment
from tests.conftest import TINY, composed


def test_environment_keys_and_types(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    env = environment({"amazon2014/x/user_sequence.txt": "ab" * 32})
    assert json.loads(json.dumps(env)) == env  # JSON-able as is
    assert set(env) == {"recorded_at", "python", "platform", "packages", "torch", "git", "data_files", "cpu"}
    assert set(env["python"]) == {"version", "implementation"} and env["python"]["implementation"]
    packages = env["packages"]
    assert list(packages) == sorted(packages, key=str.lower) and all(isinstance(v, str) for v in packages.values())
    assert torch.__version__.startswith(packages["torch"])
    assert {"numpy", "hydra-core"} <= set(packages)
    build = env["torch"]
    assert build["version"] == torch.__version__ and build["cuda"] == torch.version.cuda
    assert isinstance(build["cuda_available"], bool) and isinstance(build["devices"], list)
    assert build["cudnn"] is None or isinstance(build["cudnn"], int)
    git = env["git"]
    assert git is None or (re.fullmatch(r"[0-9a-f]{40}", git["commit"]) and isinstance(git["dirty"], bool))
    assert env["data_files"] == {"amazon2014/x/user_sequence.txt": "ab" * 32}
    cpu = env["cpu"]
    assert isinstance(cpu["model"], (str, type(None))) and isinstance(cpu["count"], int)
    assert cpu["torch_threads"] == torch.get_num_threads()
    assert cpu["env"]["OMP_NUM_THREADS"] == "1" and "MKL_NUM_THREADS" not in cpu["env"]
    assert set(cpu["env"]) <= set(THREAD_VARIABLES)


def test_git_state_is_null_outside_a_checkout_and_without_git(tmp_path, monkeypatch):
    assert git_state(tmp_path) is None  # not a git checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    assert git_state() is None


def test_a_resume_writes_its_environment_beside_the_first(tmp_path):
    first = write_environment(tmp_path, {"a": "1"}, resuming=False)
    assert first == tmp_path / "environment.json"
    again = write_environment(tmp_path, {"a": "2"}, resuming=True)
    assert again != first and re.fullmatch(r"environment\.[0-9_-]+\.json", again.name)
    assert json.loads(first.read_text())["data_files"] == {"a": "1"}
    assert json.loads(again.read_text())["data_files"] == {"a": "2"}


def test_a_run_and_its_evaluation_write_environment_json(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GLOSS_CACHE_DIR", str(tmp_path / "c"))
    cfg = composed(*TINY, f"paths.data_dir={tiny_root}", f"paths.cache_dir={tmp_path / 'c'}", "model=cooc",
                   "eval.max_users=10")
    expected = {name: hashlib.sha256((tiny_root / name).read_bytes()).hexdigest()
                for name in ("amazon2014/tiny/item_titles.tsv", "amazon2014/tiny/user_sequence.txt")}
    for run_dir, saved in ((tmp_path / "run", None), (tmp_path / "eval", tmp_path / "run")):
        run_dir.mkdir()
        run_experiment(cfg, run_dir, saved_run=saved)
        env = json.loads((run_dir / "environment.json").read_text())
        assert env["data_files"] == expected
        assert env["packages"]["torch"] and env["python"]["version"]
