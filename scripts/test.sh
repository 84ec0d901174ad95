#!/usr/bin/env bash
# The test suite: set up (if needed), then pytest. Extra arguments go to pytest. Two tiers:
#   bash scripts/test.sh                 the full suite (CI, .ci/run): every test, including the `slow` ones
#   bash scripts/test.sh -m "not slow"   the inner loop: no run.py/eval.py/predict.py launches, multiruns or DDP
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${GLOSS_DATA_DIR:-}" ] && [ -d ../shared/data ]; then export GLOSS_DATA_DIR=../shared/data; fi
export WANDB_MODE=offline HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest -q "$@"
