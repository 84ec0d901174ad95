#!/usr/bin/env bash
# Creates .venv and installs gloss. torch==2.13.0 (the CPU wheel on this machine) goes in FIRST, so that no
# dependency drags in a multi-GB CUDA build. Re-running is cheap: nothing is reinstalled while pyproject.toml
# is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.gloss-setup-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import torch" || { echo "error: torch==2.13.0 did not install" >&2; exit 1; }
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,offline-minilm]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import gloss, hydra, lightning, transformers, peft, bitsandbytes, sentence_transformers, faiss, bm25s, wandb, ranx, optuna, submitit" \
    || { echo "error: dependencies did not install" >&2; exit 1; }
  rm -f .venv/.gloss-setup-*
  touch "$stamp"
fi
