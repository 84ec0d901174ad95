#!/usr/bin/env bash
# Hyperparameter grid for cooc with Hydra's multirun, chosen on the validation users (eval.val=true):
# the val report ranks the settings, the test report is for the one you pick. Extra arguments go to every job.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DIR=${SWEEP_DIR:-outputs/multirun/cooc_grid_$(date +%Y-%m-%d_%H-%M-%S)}
"$PY" run.py -m hydra.sweep.dir="$DIR" dataset=beauty model=cooc eval.val=true \
  model.window=1,3,5 model.history_items=1,3,5 model.exclude_seen=true \
  'model_name=cooc-w${model.window}-h${model.history_items}' "$@"
"$PY" -m gloss.report "$DIR" --split val
