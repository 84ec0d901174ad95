#!/usr/bin/env bash
# Writes requirements.lock: the exact version of every distribution gloss installs, resolved afresh from
# pyproject.toml in a throw-away virtualenv (torch==2.13.0 first, as in scripts/setup.sh). Run it after editing
# pyproject.toml's dependencies, then commit both files; scripts/setup.sh refuses a lock made for another pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m venv "$tmp/venv"
pip=("$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
"${pip[@]}" ".[test,offline-minilm]" 2>&1 | grep -v "^WARNING: Location" || true
{
  echo "# Exact versions of every distribution gloss installs besides torch (scripts/setup.sh: torch==2.13.0 first, then"
  echo "# these, then gloss)."
  echo "# Remake with: bash scripts/lock.sh   (after editing pyproject.toml's dependencies; commit both)"
  echo "# pyproject.toml sha256: $(sha256sum pyproject.toml | cut -d' ' -f1)"
  "$tmp/venv/bin/python" -m pip freeze --disable-pip-version-check | grep -viE "^(gloss|-e |nvidia-|triton==|torch==)" | LC_ALL=C sort -f
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) distributions"
