"""The environment is locked: requirements.lock pins every distribution gloss installs, satisfies pyproject.toml, and
scripts/setup.sh refuses a lock made for another pyproject.toml (one line, exit 2) before installing anything."""
from __future__ import annotations

import hashlib
import shutil
import subprocess

from packaging.requirements import Requirement

from tests.conftest import REPO


def locked() -> dict[str, str]:
    lines = (REPO / "requirements.lock").read_text().splitlines()
    return {name.lower().replace("_", "-"): version for name, _, version in
            (line.partition("==") for line in lines if line and not line.startswith("#"))}


def test_the_lock_is_for_this_pyproject_and_satisfies_every_dependency():
    import tomllib

    header = next(line for line in (REPO / "requirements.lock").read_text().splitlines() if "pyproject.toml sha256" in line)
    assert header.split(": ")[1] == hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = locked()
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    for dep in map(Requirement, deps):
        if dep.name == "torch":  # installed first by scripts/setup.sh, not in the lock
            continue
        name = dep.name.lower().replace("_", "-")
        assert name in pins, f"{dep.name} is not in requirements.lock"
        assert dep.specifier.contains(pins[name], prereleases=True), f"{dep.name}=={pins[name]} does not satisfy {dep}"


def test_setup_refuses_a_lock_made_for_another_pyproject(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts")
    shutil.copy(REPO / "requirements.lock", tmp_path)
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text() + "\n# an edit\n")
    proc = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: requirements.lock was made for another pyproject.toml: run bash scripts/lock.sh and commit both"]
    assert not (tmp_path / ".venv").exists()  # refused before anything was installed
