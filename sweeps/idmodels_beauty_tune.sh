#!/usr/bin/env bash
# BERT4Rec and GRU4Rec on beauty, seen items filtered (as the published SASRec-CE / BSARec rows), chosen on the 1,118
# validation users (report --split val); two jobs at a time (hydra/launcher=local_parallel, 1 thread each).
# BERT4Rec: mask_prob 0.2 / 0.4 / 0.6 at dropout 0.2, and dropout 0.5 at mask_prob 0.2; GRU4Rec: dropout 0.2 / 0.5.
# Results and the choice: docs/idmodels.md (about an hour here). Extra arguments go to every job.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DIR=${SWEEP_DIR:-outputs/multirun/idmodels_beauty_tune_$(date +%Y-%m-%d_%H-%M-%S)}
COMMON=(hydra/launcher=local_parallel dataset=beauty eval.val=true model.exclude_seen=true)
"$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/bert4rec" model=bert4rec model.mask_prob=0.2,0.4,0.6 \
  model.dropout=0.2 'model_name=bert4rec-m${model.mask_prob}-d${model.dropout}' "$@"
"$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/bert4rec_d0.5" model=bert4rec model.mask_prob=0.2 \
  model.dropout=0.5 'model_name=bert4rec-m${model.mask_prob}-d${model.dropout}' "$@"
"$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/gru4rec" model=gru4rec model.dropout=0.2,0.5 \
  'model_name=gru4rec-d${model.dropout}' "$@"
"$PY" -m gloss.report "$DIR" --split val
