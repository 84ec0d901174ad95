#!/usr/bin/env bash
# The Hydra multirun example: 3 models x 2 retrievers on Beauty (6 jobs, one process), then the report.
# cooc and popularity ignore the retriever, so their second job repeats the first; the report keeps the newest
# and lists the repeat. Extra arguments go to every job (e.g. model.exclude_seen=true).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DIR=${SWEEP_DIR:-outputs/multirun/beauty_baselines_$(date +%Y-%m-%d_%H-%M-%S)}
"$PY" run.py -m hydra.sweep.dir="$DIR" dataset=beauty model=lis,cooc,popularity retriever=dense,bm25 "$@"
"$PY" -m gloss.report "$DIR"
