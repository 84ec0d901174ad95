#!/usr/bin/env bash
# BSARec on one dataset (DATASET, default beauty), seen items filtered (as the published BSARec rows), chosen on the
# validation users (report --split val), one job at a time, 1 thread: one knob at a time from the paper's defaults
# (dropout 0.5 / attention_dropout 0.5, c 5, alpha 0.7). Pass a subset as STEPS="dropout c alpha" (default: all three).
# Each beauty job is about 15 minutes here. Results and the choice: docs/idmodels.md. Extra arguments go to every job.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATASET=${DATASET:-beauty}
DIR=${SWEEP_DIR:-outputs/multirun/bsarec_${DATASET}_tune_$(date +%Y-%m-%d_%H-%M-%S)}
COMMON=(dataset="$DATASET" model=bsarec eval.val=true model.exclude_seen=true
        'model_name=bsarec-d${model.dropout}-ad${model.attention_dropout}-c${model.c}-a${model.alpha}')
for step in ${STEPS:-dropout c alpha}; do
  case $step in
    dropout) "$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/dropout" model.dropout=0.2,0.3 \
               model.attention_dropout=0.2 "$@" ;;
    c)       "$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/c" model.c=3,9 "$@" ;;
    alpha)   "$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/alpha" model.alpha=0.3,0.5,0.9 "$@" ;;
    *) echo "unknown step $step (dropout, c, alpha)" >&2; exit 2 ;;
  esac
done
"$PY" -m gloss.report "$DIR" --split val
