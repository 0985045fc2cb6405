#!/usr/bin/env bash
# Stage 1: projector pre-training on image captions (projector only, `plain` template, ZeRO-2).
# Same environment as scripts/sft_ov_encoder.sh; the default CONFIG is the tiny CPU run on the playground captions,
# or llava/train/configs/pretrain_qwen3_1_7b.yaml when VISION_TOWER/LLM is set. The result, a full checkpoint folder
# with multi_modal_projector.safetensors, is what PROJECTOR= points SFT at (the folder or the file).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${MODEL_PATH:-}${VISION_TOWER:-}${LLM:-}" ]; then
    export CONFIG="${CONFIG:-llava/train/configs/pretrain_tiny.yaml}"
else
    export CONFIG="${CONFIG:-llava/train/configs/pretrain_qwen3_1_7b.yaml}"
fi
export SKIP_PLAYGROUND_EVAL=1
exec bash "$REPO_ROOT/scripts/sft_ov_encoder.sh" "$@"
