#!/usr/bin/env bash
# The paper's LLaMA presets at their real size with RANDOM weights (benchmarks/random_llama.py), in one GPU session of
# at most ~8 minutes (issue 28):
#   1. the 1B preset end to end with run.py (4-bit NF4 + LoRA, its recipe, padding-free batches): BATCHES training
#      batches -> ranking VAL_USERS validation users -> ranking USERS test users -> metrics.json; run.log's training
#      tokens/s, ranking users/s and peak GPU memory are printed (metrics are meaningless: random weights);
#   2. benchmarks/llama_probe.py on the 1B, 3B and 8B presets: training tokens/s + peak memory of full-length steps,
#      and users/s + peak memory of one beam-search batch of the longest prompts (users chosen by the memory budget);
#      for the first size also the earlier way on the same model (--compare: padded batches with gradient
#      checkpointing, model.generate with 16 users per batch), i.e. the before/after table.
# Each random model is written to $CHECK_DIR/<size>/model and deleted after its probe unless KEEP=1 (8B: 16 GB).
#
#   bash benchmarks/gpu_llama_check.sh                 # on one GPU
#   bash benchmarks/gpu_llama_check.sh --tiny          # CPU smoke test of the same steps with a tiny model (< 60 s)
#   SIZES="1b 3b" bash benchmarks/gpu_llama_check.sh   # probe only some sizes; extra arguments: Hydra overrides of run.py
# Environment: DATASET (beauty), GLOSS_DATA_DIR (../shared/data), CHECK_DIR (outputs/gpu_check), PYTHON (python),
# BATCHES (100), VAL_USERS (100), USERS (2000), STEPS (probe training steps: 3), TINY=1 (= --tiny).
set -euo pipefail
if [ "${1:-}" = "--tiny" ]; then TINY=1; shift; fi
TINY=${TINY:-0} PY=${PYTHON:-python} DATASET=${DATASET:-beauty} DATA=${GLOSS_DATA_DIR:-../shared/data}
DIR=${CHECK_DIR:-outputs/gpu_check} STEPS=${STEPS:-3}
if [ "$TINY" = 1 ]; then
  # float32 without 4-bit on a CPU, short sequences; the "sizes" are all the tiny model
  FIRST=tiny SIZES=${SIZES:-tiny} TRAINER=cpu VOCAB=300 BATCHES=${BATCHES:-3} VAL_USERS=${VAL_USERS:-5} USERS=${USERS:-20}
  MODEL_SET=(backbone.load_in_4bit=false backbone.torch_dtype=float32 max_seq_length=64 generation.max_new_tokens=6
             generation.memory_budget_gb=0.002)
else
  FIRST=1b SIZES=${SIZES:-1b 3b 8b} TRAINER=gpu VOCAB=16000 BATCHES=${BATCHES:-100} VAL_USERS=${VAL_USERS:-100}
  USERS=${USERS:-2000} MODEL_SET=()
fi
DATASET_SET=()
declare -A PRESET=([tiny]=llama3_2_1b [1b]=llama3_2_1b [3b]=llama3_2_3b [8b]=llama3_1_8b)
[ "$DATASET" = beauty ] || DATASET_SET=("dataset.name=$DATASET" "dataset.power_min_length=null")

make_model() {  # $1: size -> $DIR/$1/model
  [ -f "$DIR/$1/model/config.json" ] || $PY benchmarks/random_llama.py --size "$1" --out "$DIR/$1/model" \
    --dataset "$DATASET" --data-dir "$DATA" --vocab "$VOCAB"
}

echo "== 1. $FIRST preset end to end (run.py, $BATCHES training batches, $VAL_USERS validation users, $USERS test users)"
make_model "$FIRST"
RUN="$DIR/$FIRST/run_$(date +%Y%m%d_%H%M%S)"
START=$(date +%s)
GLOSS_DATA_DIR="$DATA" $PY run.py dataset=beauty "${DATASET_SET[@]}" model="${PRESET[$FIRST]}" \
  model.backbone.pretrained="$DIR/$FIRST/model" "${MODEL_SET[@]/#/model.}" trainer="$TRAINER" retriever=bm25 \
  trainer.max_epochs=1 trainer.limit_train_batches="$BATCHES" trainer.limit_val_batches=2 \
  callbacks.log_progress.interval_s=5 callbacks.ranking_eval.max_users="$VAL_USERS" eval.max_users="$USERS" \
  hydra.run.dir="$RUN" "$@" > "$RUN.out" 2>&1 || { tail -n 30 "$RUN.out"; exit 1; }
echo "run: $(( $(date +%s) - START ))s, $RUN"
grep -hE "trainable parameters|epoch 0: step [0-9]+/|epoch 0: step [0-9]+,|validation users|ranking on|ranked [0-9]+ users" \
  "$RUN/run.log" | sed -E 's/^\[[^]]*\]\[[^]]*\]\[[A-Z]+\] - //'
[ -f "$RUN/metrics.json" ] && echo "metrics.json: $(tr -d ' \n' < "$RUN/metrics.json" | grep -oE '"overall":\{[^}]*\}')"

echo "== 2. probes (training step + one generation batch at the longest prompts)"
for size in $SIZES; do
  make_model "$size"
  $PY benchmarks/llama_probe.py --model "$DIR/$size/model" --preset "${PRESET[$size]}" --label "$size" \
    --steps "$STEPS" $([ "$size" = "$FIRST" ] && echo --compare) --set "${MODEL_SET[@]}"
  [ "${KEEP:-0}" = 1 ] || [ "$size" = "$FIRST" ] || rm -rf "$DIR/$size/model"
done
echo "total: $(( $(date +%s) - START ))s"
