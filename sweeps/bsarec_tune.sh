#!/usr/bin/env bash
# BSARec on one dataset (DATASET, default beauty), seen items filtered (as the published BSARec rows), chosen on the
# validation users (report --split val), one job at a time: one knob at a time (coordinate descent) from the paper's
# defaults (dropout 0.5 / attention_dropout 0.5, c 5, alpha 0.7). STEPS="default dropout c alpha" (the default) runs
# them all; a later step starts from an earlier step's choice when you pass it as extra arguments, e.g.
#   STEPS="c alpha" bash sweeps/bsarec_tune.sh model.dropout=0.2 model.attention_dropout=0.2
# DROPOUTS, CS, ALPHAS (environment) replace a step's values, e.g. a shorter grid on a larger dataset:
#   DATASET=sports STEPS="c alpha" CS=9 ALPHAS=0.9 bash sweeps/bsarec_tune.sh model.dropout=0.2 model.attention_dropout=0.2
# Each beauty job is about 5-14 minutes here (1 thread). Results and the choice: docs/idmodels.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATASET=${DATASET:-beauty}
DIR=${SWEEP_DIR:-outputs/multirun/bsarec_${DATASET}_tune_$(date +%Y-%m-%d_%H-%M-%S)}
COMMON=(dataset="$DATASET" model=bsarec eval.val=true model.exclude_seen=true
        'model_name=bsarec-d${model.dropout}-ad${model.attention_dropout}-c${model.c}-a${model.alpha}')
for step in ${STEPS:-default dropout c alpha}; do
  case $step in
    default) "$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/default" "$@" ;;
    dropout) "$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/dropout" model.dropout="${DROPOUTS:-0.2,0.3}" \
               model.attention_dropout=0.2 "$@" ;;
    c)       "$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/c" model.c="${CS:-3,9}" "$@" ;;
    alpha)   "$PY" run.py -m "${COMMON[@]}" hydra.sweep.dir="$DIR/alpha" model.alpha="${ALPHAS:-0.3,0.5,0.9}" "$@" ;;
    *) echo "unknown step $step (default, dropout, c, alpha)" >&2; exit 2 ;;
  esac
done
"$PY" -m gloss.report "$DIR" --split val
