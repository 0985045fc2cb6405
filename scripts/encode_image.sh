#!/usr/bin/env bash
# Main quick-start job (until the SFT lands): encode an image with the OneVision-Encoder and print its features.
#   MODEL_PATH   encoder folder (default: a tiny random checkpoint built on first use)
#   IMAGE        image file (default: playground/images/shapes.png)
#   RESIZE_MODE  clip (default), native or pad_to_square
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="" source "$REPO_ROOT/scripts/setup_env.sh"
args=(--resize_mode "${RESIZE_MODE:-clip}")
[ -n "${MODEL_PATH:-}" ] && args+=(--model_path "$MODEL_PATH")
[ -n "${IMAGE:-}" ] && args+=(--images "$IMAGE")
exec python -m llava.model.onevision_encoder.encode_image "${args[@]}" "$@"
