"""Which checkpoint the demo loads: the folder given, or the embedded playground checkpoint (built when missing)."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

import torch

from .media import set_image_pixel_limit
from .session import ChatEngine

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_PATH = REPO_ROOT / "checkpoints" / "llava_ov_tiny_sft"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "sft_ov_encoder.sh"


def resolve_model_path(model_path: str | os.PathLike | None) -> Path:
    """The checkpoint folder to load: `model_path` when given (it must hold a config.json), else the embedded
    playground checkpoint, trained first by `scripts/sft_ov_encoder.sh` when it is not there yet."""
    if model_path is None:
        return ensure_default_checkpoint()
    folder = Path(model_path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"--model-path {folder}: no config.json there (not a LLaVA-OV checkpoint folder)")
    return folder


def ensure_default_checkpoint(folder: Path = DEFAULT_MODEL_PATH, *, build_script: Path = BUILD_SCRIPT) -> Path:
    """Builds the playground checkpoint with the same script a newcomer runs (tiny model + playground data + SFT,
    about 3 minutes on a CPU; OUTPUT_DIR=`folder`) unless its weights already exist. Returns the folder."""
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return folder
    if not build_script.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {folder} and no {build_script} to build it (run from a source checkout, "
            "or pass --model-path)"
        )
    logger.warning("no checkpoint at %s: building it with %s (about 3 minutes on a CPU)", folder, build_script)
    env = {**os.environ, "SKIP_PLAYGROUND_EVAL": "1", "OUTPUT_DIR": str(folder)}
    if sys.prefix != sys.base_prefix:
        # Train in the environment the demo runs in instead of letting the script create `.venv` beside it.
        env["VENV"] = sys.prefix
    try:
        subprocess.run(["bash", str(build_script)], cwd=REPO_ROOT, env=env, check=True)
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"{build_script} failed with exit status {error.returncode}") from error
    if not (folder / "model.safetensors").is_file():
        raise RuntimeError(f"{build_script} finished but wrote no {folder / 'model.safetensors'}")
    return folder


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options both front ends take."""
    parser.add_argument("--model-path", default=None, help="LLaVA-OV checkpoint folder (default: the playground one)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="longest answer in tokens")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy decoding")
    parser.add_argument("--seed", type=int, default=None, help="seed for sampling (reproducible answers)")
    parser.add_argument(
        "--allow-pickle", action="store_true",
        help="also load pickle weights (pytorch_model.bin); refused by default, only for checkpoints you trust",
    )  # fmt: skip


def engine_from_arguments(args: argparse.Namespace) -> ChatEngine:
    """Seeds sampling when asked and loads the chat engine of `--model-path` (or the playground checkpoint)."""
    if args.seed is not None:
        torch.manual_seed(args.seed)
    return ChatEngine.from_pretrained(
        resolve_model_path(args.model_path), max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        allow_pickle=args.allow_pickle,
    )  # fmt: skip


def engine_or_report(args: argparse.Namespace) -> ChatEngine | None:
    """The front ends' start: the image pixel limit of `--max-image-pixels`, then the engine; None (after one
    error line in the log) when the model cannot be loaded, so the caller exits with status 2."""
    set_image_pixel_limit(args.max_image_pixels)
    try:
        return engine_from_arguments(args)
    except Exception as error:  # noqa: BLE001 - no checkpoint there, pickle weights refused, a bad config, ...
        logger.debug("loading the model failed", exc_info=True)
        logger.error("cannot load the model: %s", error)
        return None
