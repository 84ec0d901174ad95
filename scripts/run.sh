#!/usr/bin/env bash
# The main job: set up (if needed), then one experiment. Extra arguments are Hydra overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${GLOSS_DATA_DIR:-}" ] && [ -d ../shared/data ]; then export GLOSS_DATA_DIR=../shared/data; fi
exec .venv/bin/python run.py "$@"
