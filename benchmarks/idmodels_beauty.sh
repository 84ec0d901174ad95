#!/usr/bin/env bash
# Train + test SASRec, BERT4Rec and GRU4Rec on beauty with their default configs; wall time and peak memory per model.
# Results (metrics.json, results.md, csv/ training curves, checkpoints/) land in outputs/bench/idmodels/<model>/<time>/.
# Usage: THREADS=2 bash benchmarks/idmodels_beauty.sh [model ...]   (numbers in docs/idmodels.md)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-1} GLOSS_DATA_DIR=${GLOSS_DATA_DIR:-../shared/data}
models=${*:-sasrec bert4rec gru4rec}
for m in $models; do
  /usr/bin/time -f "$m: wall %e s, peak RSS %M KB" .venv/bin/python run.py dataset=beauty model="$m" \
    trainer.enable_progress_bar=false logger=csv hydra.run.dir="outputs/bench/idmodels/$m/$(date +%F_%H-%M-%S)"
done
