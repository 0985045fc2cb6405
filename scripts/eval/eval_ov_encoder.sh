#!/usr/bin/env bash
# Evaluates a LLaVA-OV checkpoint with lmms-eval 0.7.3 through the `llava_ov_encoder` plugin (no fork).
#
# With no environment: the local offline tasks shipped in llava/eval/tasks (playground video QA, image QA, video
# multiple choice) on checkpoints/llava_ov_tiny_sft on the CPU (built by scripts/sft_ov_encoder.sh when missing),
# then a results table.
#
# Benchmarks:  TASKS=videomme,mvbench MODEL_PATH=/ckpt bash scripts/eval/eval_ov_encoder.sh
#   TASKS         lmms-eval task names, comma-separated (the 16 benchmarks: llava/eval/README.md)
#   MODEL_PATH    checkpoint folder (default: checkpoints/llava_ov_tiny_sft)
#   NUM_GPUS      processes of `accelerate launch` (default: all visible GPUs)
#   VIDEO_MODE    codec (cv_reader on the fly, default) | codec_offline | uniform
#   OFFLINE_ROOT  precompute output folder(s) for codec_offline, ';'-separated (scripts/precompute_codec_patch/)
#   BATCH_SIZE    requests per forward pass (default 8 on CPU, 1 on GPUs)
#   LIMIT         lmms-eval --limit (a smoke run)
#   OUTPUT_DIR    where results go (default: eval_results/<date>_<time>)
#   MODEL_ARGS    extra model_args, e.g. "dtype=float32,attn_implementation=sdpa,max_new_tokens=64"
#   LLAVA_PLAYGROUND_DATA   playground folder of the local tasks (default: playground/data, built when missing)
# Extra arguments are passed to lmms-eval. The run fails when lmms-eval leaves no results for a task (lmms-eval
# itself exits 0 after a crash).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
user_hub_offline="${HF_HUB_OFFLINE-}"
EXTRAS="${EXTRAS-eval}" source scripts/setup_env.sh

MODEL_PATH="${MODEL_PATH:-checkpoints/llava_ov_tiny_sft}"
OUTPUT_DIR="${OUTPUT_DIR:-eval_results/$(date +%Y%m%d_%H%M%S)}"
model_args="pretrained=$MODEL_PATH,video_mode=${VIDEO_MODE:-codec}"
[ -n "${OFFLINE_ROOT:-}" ] && model_args+=",offline_root=$OFFLINE_ROOT"
extra=()
[ -n "${LIMIT:-}" ] && extra+=(--limit "$LIMIT")

if [ -z "${TASKS:-}" ]; then
    tasks="llava_ov_playground_video_qa,llava_ov_playground_image_qa,llava_ov_playground_video_mc"
    playground="${LLAVA_PLAYGROUND_DATA:-$REPO_ROOT/playground/data}"
    if [ ! -f "$playground/raw_video_eval.json" ]; then
        python playground/make_playground.py --out "$playground"
    fi
    if [ ! -f "$MODEL_PATH/model.safetensors" ]; then
        [ "$MODEL_PATH" = checkpoints/llava_ov_tiny_sft ] || { echo "[eval] no checkpoint at $MODEL_PATH" >&2; exit 1; }
        echo "[eval] $MODEL_PATH is missing: training it (scripts/sft_ov_encoder.sh, a few minutes on CPU)" >&2
        SKIP_PLAYGROUND_EVAL=1 bash scripts/sft_ov_encoder.sh
    fi
    export HF_DATASETS_OFFLINE=1 LLAVA_PLAYGROUND_DATA="$playground"
    model_args+=",device=${DEVICE:-cpu}"
    extra+=(--include_path llava/eval/tasks)
    launcher=(python -m lmms_eval)
    batch_size="${BATCH_SIZE:-8}"
else
    tasks="$TASKS"
    # Benchmarks download their data from the Hub: online unless the caller asked for offline.
    [ -n "$user_hub_offline" ] || unset HF_HUB_OFFLINE
    gpus="${NUM_GPUS:-$(python -c 'import torch; print(torch.cuda.device_count())')}"
    [ "$gpus" -ge 1 ] 2>/dev/null || gpus=1
    if [ "$gpus" -gt 1 ]; then
        launcher=(accelerate launch --num_processes "$gpus" -m lmms_eval)
    else
        launcher=(python -m lmms_eval)
    fi
    batch_size="${BATCH_SIZE:-1}"
fi
[ -n "${MODEL_ARGS:-}" ] && model_args+=",$MODEL_ARGS"

mkdir -p "$OUTPUT_DIR"
marker="$OUTPUT_DIR/.started"
touch "$marker"
status=0
"${launcher[@]}" --model llava_ov_encoder --model_args "$model_args" --tasks "$tasks" \
    --batch_size "$batch_size" --output_path "$OUTPUT_DIR" --log_samples "${extra[@]}" "$@" || status=$?
results="$(find "$OUTPUT_DIR" -name '*_results.json' -newer "$marker" | sort | tail -n 1)"
if [ "$status" -ne 0 ] || [ -z "$results" ]; then
    echo "[eval] lmms-eval failed (exit $status, results file: ${results:-none}); see the log above" >&2
    exit 1
fi
python -m llava.eval.results_table "$results" --tasks "$tasks"
echo "[eval] results: $results" >&2
