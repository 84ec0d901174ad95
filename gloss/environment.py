"""What a run ran with, written as environment.json into its run folder (`write_environment`, from
gloss.run_folder.write_run_record): Python, every installed distribution, torch's build and devices, the gloss source
tree's git commit, the sha256 of the data files read, the CPU and thread settings. gloss.report names the fields in
which the runs of one table differ.

Nothing here fails a run: what cannot be found out (no git, not a git checkout, no /proc/cpuinfo) is null.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

ENVIRONMENT_FILE = "environment.json"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
GIT_TIMEOUT_S = 5.0  # for all git calls together
SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding the gloss package (a checkout's root)


def environment(data_files: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The environment of this process, JSON-able: {"recorded_at", "python": {"version", "implementation"},
    "platform", "packages": {distribution: version} (sorted by name), "torch": {"version", "cuda", "cudnn",
    "cuda_available", "devices"} (null without torch), "git": {"commit", "dirty"} (null outside a git checkout),
    "data_files": {path: sha256} (`data_files`: GlossData.files), "cpu": {"model", "count", "torch_threads", "env":
    {thread variable: value, for those set}}}."""
    return {
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "platform": platform.platform(),
        "packages": packages(),
        "torch": torch_build(),
        "git": git_state(),
        "data_files": dict(sorted((data_files or {}).items())),
        "cpu": cpu(),
    }


def packages() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name (a name found twice on sys.path: the first, the
    one Python imports)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(name, dist.version)
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def torch_build() -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:
        return None
    try:
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # noqa: BLE001 - a broken cuDNN install is recorded as unknown, never fails the run
        cudnn = None
    try:
        available = torch.cuda.is_available()
        devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if available else []
    except Exception:  # noqa: BLE001 - a driver that fails here fails the run where it is used, not here
        available, devices = False, []
    return {"version": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn, "cuda_available": available,
            "devices": devices}


def git_state(root: Path = SOURCE_ROOT, timeout: float = GIT_TIMEOUT_S) -> dict[str, Any] | None:
    """{"commit", "dirty"} of the git checkout the gloss package was imported from; None when it is not one (e.g.
    installed into site-packages, even of a venv inside a checkout: the package must be tracked there), git is
    missing, or git does not answer within `timeout` seconds (all calls together)."""
    deadline = time.monotonic() + timeout

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=max(deadline - time.monotonic(), 0.01))
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    if git("ls-files", "--error-unmatch", "gloss/__init__.py") is None:
        return None
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit is not None else None
    if status is None:
        return None
    return {"commit": commit.strip(), "dirty": bool(status.strip())}


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu() -> dict[str, Any]:
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:
        threads = None
    return {"model": cpu_model(), "count": os.cpu_count(), "torch_threads": threads,
            "env": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}}


def write_environment(run_dir: Path, data_files: Mapping[str, str] | None, resuming: bool) -> Path:
    """environment.json in `run_dir`; a resume keeps the first attempt's and writes its own beside it
    (environment.<time>.json). Returns the file written."""
    from gloss.eval import write_atomic

    target = run_dir / ENVIRONMENT_FILE
    if resuming and target.exists():
        target = run_dir / f"environment.{datetime.now():%Y-%m-%d_%H-%M-%S_%f}.json"
    write_atomic(target, json.dumps(environment(data_files), indent=2) + "\n")
    return target
