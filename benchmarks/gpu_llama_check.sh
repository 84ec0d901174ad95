#!/usr/bin/env bash
# A paper preset at its real size with RANDOM weights (benchmarks/random_llama.py): 4-bit NF4 + LoRA, batch 4 x
# accumulation 4, max_seq_length 1024, a bounded number of batches, then ranking a few thousand beauty test users.
# GEN_BATCH users per beam-search batch (x5 beams; HF generate expands the beams before the prompt is encoded: 64
# ran out of 80 GB on the longest 1024-token prompts of the 1B). What it measures (from run.log): batches/s (optimizer steps/s = that / 4), tokens/s, peak GPU memory in training
# and in ranking, generation users/s, and the device the ranking ran on. Metrics are meaningless (random weights).
#
#   bash benchmarks/gpu_llama_check.sh                       # 1B on one GPU
#   SIZE=8b MODEL=llama3_1_8b bash benchmarks/gpu_llama_check.sh
#   SIZE=tiny TRAINER=cpu bash benchmarks/gpu_llama_check.sh model.backbone.load_in_4bit=false   # CPU smoke test
# Extra arguments are Hydra overrides of the run.
set -euo pipefail
SIZE=${SIZE:-1b} MODEL=${MODEL:-llama3_2_1b} TRAINER=${TRAINER:-gpu}
BATCHES=${BATCHES:-160} VAL_USERS=${VAL_USERS:-100} USERS=${USERS:-2000} GEN_BATCH=${GEN_BATCH:-16} PY=${PYTHON:-python}
DIR=${CHECK_DIR:-outputs/gpu_check}/$SIZE
[ -f "$DIR/model/config.json" ] || $PY benchmarks/random_llama.py --size "$SIZE" --out "$DIR/model" \
  --data-dir "${GLOSS_DATA_DIR:-../shared/data}"
$PY run.py dataset=beauty model="$MODEL" model.backbone.pretrained="$DIR/model" trainer="$TRAINER" retriever=bm25 \
  trainer.max_epochs=1 trainer.limit_train_batches="$BATCHES" callbacks.ranking_eval.max_users="$VAL_USERS" \
  eval.max_users="$USERS" model.generation.batch_size="$GEN_BATCH" hydra.run.dir="$DIR/run_$(date +%H%M%S)" "$@"
grep -hE "trainable parameters|gloss.train|ranking on|ranked|generate:" "$(ls -d "$DIR"/run_* | tail -n 1)/run.log"
