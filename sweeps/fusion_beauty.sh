#!/usr/bin/env bash
# Fusion study on Beauty (docs/sweeps.md): LIS with dense / BM25 / hybrid retrieval, 1 or 3 query items,
# the four fusion modes, with and without exclude_seen; then a few follow-ups (hybrid weights, 2 and 5 query
# items, recency-weighted fusion); cooc as the non-retrieval reference. Each multirun gets its own folder
# below one parent; one report covers them all. Extra arguments go to every job (e.g. dataset=toys).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DIR=${SWEEP_DIR:-outputs/multirun/fusion_beauty_$(date +%Y-%m-%d_%H-%M-%S)}
"$PY" run.py -m hydra.sweep.dir="$DIR/q1" dataset=beauty model=lis retriever=dense,bm25,hybrid \
  model.exclude_seen=false,true 'model_name=lis-q1-excl_${model.exclude_seen}' "$@"
"$PY" run.py -m hydra.sweep.dir="$DIR/q3" dataset=beauty model=lis retriever=dense,bm25,hybrid model.n_queries=3 \
  model.fusion=top1_per_query,rrf,max_score,sum_score model.exclude_seen=false,true \
  'model_name=lis-q3-${model.fusion}-excl_${model.exclude_seen}' "$@"
"$PY" run.py -m hydra.sweep.dir="$DIR/hybrid_weights" dataset=beauty model=lis retriever=hybrid model.exclude_seen=true \
  'retriever.weights=[0.5,1.0],[0.25,1.0]' 'model_name=lis-q1-excl_True-dense_w${retriever.weights.0}' "$@"
"$PY" run.py -m hydra.sweep.dir="$DIR/n_queries" dataset=beauty model=lis retriever=bm25 model.exclude_seen=true \
  model.n_queries=2,5 'model_name=lis-q${model.n_queries}-${model.fusion}-excl_True' "$@"
"$PY" run.py -m hydra.sweep.dir="$DIR/decay" dataset=beauty model=lis retriever=bm25 model.exclude_seen=true \
  model.n_queries=3 model.fusion=rrf,sum_score model.query_decay=0.5 \
  'model_name=lis-q3-${model.fusion}-decay${model.query_decay}-excl_True' "$@"
"$PY" run.py -m hydra.sweep.dir="$DIR/cooc" dataset=beauty model=cooc model.exclude_seen=false,true \
  'model_name=cooc-excl_${model.exclude_seen}' "$@"
"$PY" -m gloss.report "$DIR"
