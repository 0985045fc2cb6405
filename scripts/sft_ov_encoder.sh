#!/usr/bin/env bash
# SFT of the LLaVA-OV model (OneVision-Encoder -> projector -> Qwen3).
#
# With no environment: builds the tiny random checkpoint and the playground data when missing (a few minutes),
# pretrains the tiny encoder on the playground's motion (stage 0, ~1 minute), trains on the CPU (900 steps, ~1.5
# minutes on 2 cores) and prints the held-out playground accuracy. SEED=N seeds both stages (default 0).
#
# Real runs (any of these; extra arguments are passed to `python -m llava.train` as overrides):
#   CONFIG          YAML of training arguments      (default: llava/train/configs/sft_tiny.yaml, or
#                                                    sft_qwen3_1_7b.yaml when VISION_TOWER/LLM/MODEL_PATH is set)
#   MODEL_PATH      LLaVA-OV checkpoint to continue from (ours or upstream-trained)
#   VISION_TOWER    OneVision-Encoder folder   }  assemble a new model
#   LLM             Qwen3 folder               }
#   PROJECTOR       stage-1 projector file/folder (optional)
#   DATA_PATH       JSON/JSONL manifest or YAML mixture;  IMAGE_FOLDER  root of relative media paths
#   OUTPUT_DIR      where checkpoints go (a rerun resumes from the last checkpoint-* in it)
#   NUM_GPUS        processes per node (default: all visible GPUs, 1 without GPUs)
#   NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT     multi-node rendezvous (torchrun)
#   LAUNCHER        torchrun (default) or deepspeed
#   DEEPSPEED       zero2 | zero3 | zero3_offload | a JSON path | none
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
EXTRAS="${EXTRAS-train}" source scripts/setup_env.sh

args=()
if [ -z "${MODEL_PATH:-}${VISION_TOWER:-}${LLM:-}" ]; then
    CONFIG="${CONFIG:-llava/train/configs/sft_tiny.yaml}"
    if [ ! -f checkpoints/llava_ov_tiny/model.safetensors ]; then
        python -m llava.playground.tiny_checkpoint checkpoints/llava_ov_tiny
    fi
    if [ ! -f playground/data/sft.yaml ]; then
        python playground/make_playground.py --out playground/data
    fi
    # Stage 0: the tiny encoder's motion pretraining (~1 minute; the real OneVision-Encoder arrives pretrained).
    seed="${SEED:-0}"
    motion=checkpoints/llava_ov_tiny_motion
    [ "$seed" = 0 ] || motion="${motion}_seed${seed}"
    if [ ! -f "$motion/model.safetensors" ]; then
        python -m llava.playground.pretrain_encoder --model_path checkpoints/llava_ov_tiny --data playground/data \
            --output_dir "$motion" --seed "$seed"
    fi
    args+=(--model_name_or_path "$motion" --seed "$seed")
    EVAL_PLAYGROUND=1
else
    CONFIG="${CONFIG:-llava/train/configs/sft_qwen3_1_7b.yaml}"
    [ -n "${MODEL_PATH:-}" ] && args+=(--model_name_or_path "$MODEL_PATH")
    [ -n "${VISION_TOWER:-}" ] && args+=(--vision_tower "$VISION_TOWER")
    [ -n "${LLM:-}" ] && args+=(--language_model "$LLM")
    [ -n "${PROJECTOR:-}" ] && args+=(--pretrained_projector "$PROJECTOR")
fi
[ -n "${DATA_PATH:-}" ] && args+=(--data_path "$DATA_PATH")
[ -n "${IMAGE_FOLDER:-}" ] && args+=(--image_folder "$IMAGE_FOLDER")
[ -n "${OUTPUT_DIR:-}" ] && args+=(--output_dir "$OUTPUT_DIR")
case "${DEEPSPEED:-}" in
    "") ;;
    none) args+=(--deepspeed "") ;;
    zero2|zero3|zero3_offload) args+=(--deepspeed "llava/train/configs/${DEEPSPEED}.json") ;;
    *) args+=(--deepspeed "$DEEPSPEED") ;;
esac

gpus="${NUM_GPUS:-$(python -c 'import torch; print(torch.cuda.device_count())')}"  # or NUM_GPUS=2 on a CPU
[ "$gpus" -ge 1 ] 2>/dev/null || gpus=1
nnodes="${NNODES:-1}"
if [ "$gpus" -gt 1 ] || [ "$nnodes" -gt 1 ]; then
    # Several processes without CUDA (a CPU smoke run of the multi-process path): DDP/DeepSpeed over gloo.
    python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
        || args+=(--use_cpu true --ddp_backend gloo)
fi
if [ "$gpus" -eq 1 ] && [ "$nnodes" -eq 1 ]; then
    python -m llava.train "$CONFIG" "${args[@]}" "$@"
elif [ "${LAUNCHER:-torchrun}" = deepspeed ]; then
    deepspeed --num_gpus "$gpus" --num_nodes "$nnodes" --master_addr "${MASTER_ADDR:-127.0.0.1}" \
        --master_port "${MASTER_PORT:-29500}" --module llava.train "$CONFIG" "${args[@]}" "$@"
else
    torchrun --nproc_per_node "$gpus" --nnodes "$nnodes" --node_rank "${NODE_RANK:-0}" \
        --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
        -m llava.train "$CONFIG" "${args[@]}" "$@"
fi

if [ -n "${EVAL_PLAYGROUND:-}" ] && [ -z "${SKIP_PLAYGROUND_EVAL:-}" ]; then
    out="$(python - "$CONFIG" "${args[@]}" "$@" <<'PY'
import sys
from llava.train.train import parse_arguments
print(parse_arguments(sys.argv[1:])[2].output_dir)
PY
)"
    python -m llava.playground.evaluate --model_path "$out" --data playground/data
fi
