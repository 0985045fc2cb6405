"""The paper's claim in miniature: codec patch selection vs uniform frames at equal visual tokens, side by side.

    python benchmarks/codec_vs_uniform.py [--data playground/data] [--work DIR] [--seed 0] [--max_steps N]

The same tiny random checkpoint, the same playground clips, the same training recipe (stage 0 encoder motion
pretraining, then `sft_tiny.yaml`: steps, learning rates, batch) and the same number of visual tokens per clip (4
images of 4 x 4 patches = 64, the playground geometry): one run sees each clip as codec mosaics (frame 0 in full +
the 48 cells where something changes, each at its own t), the other as 4 uniformly sampled frames (t = 0, 21, 42,
63). Both are scored on the same held-out questions. Prints the table per question kind with chance, and one
closing line of ratios (codec / uniform accuracy).
The codec run reads the precomputed mosaics of the default run (`sft.yaml`, `cv_reader pack`); the uniform run
decodes the same raw clips while training (`sft_raw_videos.yaml`, the processor's `video_mode="uniform"`).
"""

from __future__ import annotations

import argparse
import logging
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import PIL
import torch
import transformers

from llava.data.synthetic import CHANCE
from llava.model import LlavaOVProcessor
from llava.playground.evaluate import EvalArguments, evaluate
from llava.playground.pretrain_encoder import PretrainArguments, pretrain
from llava.playground.tiny_checkpoint import build_playground_checkpoint
from llava.train.train import main as train_main

logger = logging.getLogger("benchmarks.codec_vs_uniform")

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "llava" / "train" / "configs" / "sft_tiny.yaml"
MOTION_KINDS = ("moves", "direction", "colour")


def ensure_playground(data: Path) -> Path:
    """The playground data folder, built with `playground/make_playground.py` when it is missing."""
    if not (data / "sft_raw_videos.yaml").is_file():
        sys.path.insert(0, str(REPO_ROOT / "playground"))
        from make_playground import main as make_playground

        logger.info("building the playground data in %s", data)
        make_playground(["--out", str(data)])
    return data


def train_and_score(*, mode: str, data: Path, work: Path, seed: int, max_steps: int | None) -> tuple[dict, float]:
    """Trains the tiny checkpoint with videos read in `mode` (codec | uniform); returns (results, training s)."""
    checkpoint = work / f"tiny_{mode}"
    if not (checkpoint / "model.safetensors").is_file():
        build_playground_checkpoint(checkpoint, seed=seed)
    # Same weights and geometry; only how a raw clip becomes 4 images + positions differs.
    LlavaOVProcessor.from_pretrained(checkpoint, video_mode=mode).save_pretrained(checkpoint)
    mixture, videos = ("sft.yaml", "codec") if mode == "codec" else ("sft_raw_videos.yaml", "raw")
    start = time.perf_counter()
    # Stage 0 as in the default run, on the same clips seen the arm's way (mosaics, or 4 uniform frames).
    pretrained = pretrain(PretrainArguments(
        model_path=str(checkpoint), output_dir=str(work / f"tiny_{mode}_motion"), data=str(data), videos=videos,
        seed=seed,
    ))  # fmt: skip
    argv = [
        str(CONFIG), "--model_name_or_path", str(pretrained), "--data_path", str(data / mixture),
        "--output_dir", str(work / f"sft_{mode}"), "--seed", str(seed),
    ]  # fmt: skip
    if max_steps:
        argv += ["--max_steps", str(max_steps)]
    output = train_main(argv)
    seconds = time.perf_counter() - start
    results = evaluate(EvalArguments(model_path=str(output), data=str(data), videos=videos))
    return results, seconds


def format_comparison(codec: dict, uniform: dict) -> str:
    """The side-by-side table (accuracy per question kind, chance) and the closing line of ratios."""
    lines = [f"{'question':<14}{'chance':>8}{'codec':>8}{'uniform':>9}{'n':>6}"]
    for kind in codec:
        chance = CHANCE.get(kind, codec[kind]["chance"])
        lines.append(
            f"{kind:<14}{chance:>8.3f}{codec[kind]['accuracy']:>8.3f}{uniform[kind]['accuracy']:>9.3f}"
            f"{codec[kind]['questions']:>6}"
        )
    ratios = ", ".join(
        f"{kind} {codec[kind]['accuracy'] / max(uniform[kind]['accuracy'], 1e-9):.2f}x"
        for kind in MOTION_KINDS
        if kind in codec
    )
    lines.append(f"codec / uniform accuracy at equal visual tokens (64 per clip): {ratios}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO_ROOT / "playground" / "data"))
    parser.add_argument("--work", default=None, help="checkpoints and runs (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_steps", type=int, default=None, help="shorter runs (default: the recipe's epochs)")
    args = parser.parse_args(argv)
    data = ensure_playground(Path(args.data).resolve())
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="codec_vs_uniform_"))
    results, seconds = {}, {}
    for mode in ("codec", "uniform"):
        results[mode], seconds[mode] = train_and_score(
            mode=mode, data=data, work=work, seed=args.seed, max_steps=args.max_steps
        )
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} ({torch.get_num_threads()} threads), "
        f"torch {torch.__version__}, transformers {transformers.__version__}, Pillow {PIL.__version__}"
    )
    print(f"training s: codec {seconds['codec']:.0f}, uniform {seconds['uniform']:.0f} (same steps)")
    print(format_comparison(results["codec"], results["uniform"]))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
