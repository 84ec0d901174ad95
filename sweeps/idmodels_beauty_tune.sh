#!/usr/bin/env bash
# BERT4Rec and GRU4Rec on beauty: a small grid per model, two jobs at a time (hydra/launcher=local_parallel, 1 thread
# each), seen items filtered (as the published SASRec-CE / BSARec rows), chosen on the 1,118 validation users
# (report --split val). Results and the choice: docs/idmodels.md. Extra arguments go to every job.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DIR=${SWEEP_DIR:-outputs/multirun/idmodels_beauty_tune_$(date +%Y-%m-%d_%H-%M-%S)}
"$PY" run.py -m hydra/launcher=local_parallel hydra.sweep.dir="$DIR/bert4rec" dataset=beauty model=bert4rec \
  eval.val=true model.exclude_seen=true model.mask_prob=0.2,0.4,0.6 model.dropout=0.2,0.5 \
  'model_name=bert4rec-m${model.mask_prob}-d${model.dropout}' "$@"
"$PY" run.py -m hydra/launcher=local_parallel hydra.sweep.dir="$DIR/gru4rec" dataset=beauty model=gru4rec \
  eval.val=true model.exclude_seen=true model.hidden=64,128 model.dropout=0.2,0.5 \
  'model_name=gru4rec-h${model.hidden}-d${model.dropout}' "$@"
"$PY" -m gloss.report "$DIR" --split val
