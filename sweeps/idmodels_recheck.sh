#!/usr/bin/env bash
# BERT4Rec's and GRU4Rec's beauty choices (sweeps/idmodels_beauty_tune.sh) re-checked on other datasets (DATASETS,
# default toys,sports), seen items filtered, on each dataset's validation users (report --split val): each choice
# against the beauty runner-up it beat clearly (BERT4Rec mask_prob 0.4 vs 0.2 at dropout 0.2; GRU4Rec dropout 0.5
# vs 0.2). Two jobs at a time (hydra/launcher=local_parallel, 1 thread each). Results: docs/idmodels.md. Extra
# arguments go to every job.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATASETS=${DATASETS:-toys,sports}
DIR=${SWEEP_DIR:-outputs/multirun/idmodels_recheck_$(date +%Y-%m-%d_%H-%M-%S)}
COMMON=(hydra/launcher=local_parallel dataset="$DATASETS" eval.val=true model.exclude_seen=true)
"$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/gru4rec" model=gru4rec model.dropout=0.5,0.2 \
  'model_name=gru4rec-d${model.dropout}' "$@"
"$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/bert4rec" model=bert4rec model.mask_prob=0.4,0.2 \
  model.dropout=0.2 'model_name=bert4rec-m${model.mask_prob}-d${model.dropout}' "$@"
"$PY" -m gloss.report "$DIR" --split val
