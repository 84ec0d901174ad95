#!/usr/bin/env bash
# The paper's table layout for the models that need no training: LIS with dense / BM25 / hybrid retrieval,
# cooc and popularity, on every dataset; two multiruns below one folder (no repeated jobs), then one report.
# DATASETS=beauty bash sweeps/paper_table.sh   for one dataset. Extra arguments go to every job.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATASETS=${DATASETS:-beauty,toys,sports}
DIR=${SWEEP_DIR:-outputs/multirun/paper_table_$(date +%Y-%m-%d_%H-%M-%S)}
"$PY" run.py -m hydra.sweep.dir="$DIR/lis" dataset="$DATASETS" model=lis retriever=dense,bm25,hybrid "$@"
"$PY" run.py -m hydra.sweep.dir="$DIR/no_retriever" dataset="$DATASETS" model=cooc,popularity "$@"
"$PY" -m gloss.report "$DIR"
