#!/usr/bin/env bash
# Creates .venv and installs gloss with the exact versions of requirements.lock. torch==2.13.0 (the CPU wheel on this
# machine; on a GPU machine the same line takes the CUDA build) goes in FIRST, so that no dependency drags in a
# multi-GB CUDA build; then every locked version (--no-deps: exactly these), then gloss itself. Re-running is cheap:
# nothing is reinstalled while pyproject.toml and requirements.lock are unchanged. A lock made for another
# pyproject.toml is refused: remake it with `bash scripts/lock.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
locked=$(sed -n 's/^# pyproject.toml sha256: //p' requirements.lock)
if [ "$locked" != "$(sha256sum pyproject.toml | cut -d' ' -f1)" ]; then
  echo "error: requirements.lock was made for another pyproject.toml: run bash scripts/lock.sh and commit both" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.gloss-setup-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
  "${pip[@]}" "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import torch" 2>/dev/null || { echo "error: torch==2.13.0 did not install" >&2; exit 1; }
  "${pip[@]}" --no-deps -r requirements.lock 2>&1 | grep -v "^WARNING: Location" || true
  "${pip[@]}" --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip check --disable-pip-version-check >&2 || { echo "error: the installed set is inconsistent (pip check above)" >&2; exit 1; }
  .venv/bin/python -c "import gloss, hydra, lightning, transformers, peft, bitsandbytes, sentence_transformers, faiss, bm25s, wandb, ranx, optuna, submitit, polars" \
    || { echo "error: dependencies did not install" >&2; exit 1; }
  rm -f .venv/.gloss-setup-*
  touch "$stamp"
fi
