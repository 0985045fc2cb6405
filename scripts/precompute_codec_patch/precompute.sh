#!/usr/bin/env bash
# Offline codec assets (cv_reader precompute) for a benchmark's videos, for `VIDEO_MODE=codec_offline`.
# Resumable (finished videos are skipped; rerun after an interruption) and sharded (one shard per machine/job).
#
#   TASK=videomme bash scripts/precompute_codec_patch/precompute.sh          videos of an lmms-eval task
#   VIDEO_DIR=/data/clips NAME=clips bash scripts/precompute_codec_patch/precompute.sh
#   TASK        lmms-eval task or group; its videos are listed through the task's own doc_to_visual (every
#               benchmark's layout; the data must be there: run the benchmark or its download first)
#   VIDEO_DIR   or a folder of videos (NAME: sub-folder of the output, default the folder's name)
#   OUT_ROOT    output root (default: codec_assets); assets go to OUT_ROOT/<TASK or NAME>/assets/<key>/
#   MODEL_PATH  checkpoint whose processor_config.json sets the geometry (default: 8 mosaics of 576 px, patch 16)
#   NUM_SHARDS, SHARD_ID   split the videos over jobs (default 1, 0);  NUM_WORKERS  processes per job (default 1)
# Then: VIDEO_MODE=codec_offline OFFLINE_ROOT=codec_assets/videomme TASKS=videomme bash scripts/eval/eval_ov_encoder.sh
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
EXTRAS="${EXTRAS-eval}" source scripts/setup_env.sh

args=(--out_root "${OUT_ROOT:-codec_assets}" --num_shards "${NUM_SHARDS:-1}" --shard_id "${SHARD_ID:-0}"
      --num_workers "${NUM_WORKERS:-1}")
if [ -n "${TASK:-}" ]; then
    args+=(--task "$TASK")
elif [ -n "${VIDEO_DIR:-}" ]; then
    args+=(--video_dir "$VIDEO_DIR")
else
    echo "[precompute] set TASK (an lmms-eval task) or VIDEO_DIR (a folder of videos)" >&2
    exit 2
fi
[ -n "${NAME:-}" ] && args+=(--name "$NAME")
[ -n "${MODEL_PATH:-}" ] && args+=(--model_path "$MODEL_PATH")
python -m llava.eval.precompute_videos "${args[@]}" "$@"
