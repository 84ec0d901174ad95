#!/usr/bin/env bash
# Fusion study on Beauty (docs/sweeps.md): LIS with dense / BM25 / hybrid retrieval, 1 or 3 query items,
# the four fusion modes, with and without exclude_seen; cooc as the non-retrieval reference.
# All runs land in one folder, then one report. Extra arguments are passed to every run (e.g. dataset=toys).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DIR=${SWEEP_DIR:-outputs/multirun/fusion_beauty_$(date +%Y-%m-%d_%H-%M-%S)}
"$PY" run.py -m hydra.sweep.dir="$DIR" dataset=beauty model=lis retriever=dense,bm25,hybrid \
  model.exclude_seen=false,true 'model_name=lis-q1-excl_${model.exclude_seen}' "$@"
"$PY" run.py -m hydra.sweep.dir="$DIR" dataset=beauty model=lis retriever=dense,bm25,hybrid model.n_queries=3 \
  model.fusion=top1_per_query,rrf,max_score,sum_score model.exclude_seen=false,true \
  'model_name=lis-q3-${model.fusion}-excl_${model.exclude_seen}' "$@"
"$PY" run.py -m hydra.sweep.dir="$DIR" dataset=beauty model=cooc model.exclude_seen=false,true \
  'model_name=cooc-excl_${model.exclude_seen}' "$@"
"$PY" -m gloss.report "$DIR"
