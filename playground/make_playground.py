"""Builds the embedded playground data through the real pipeline (a few minutes on one CPU core).

    python playground/make_playground.py [--out playground/data] [--train-videos 2400] [--eval-videos 192]

1. synthetic H.264 clips (llava/data/synthetic.py) with motion questions, in the upstream raw format
   (``{"id", "video", "conversations"}`` with a ``<video>`` turn);
2. ``cv_reader pack``: one decode per clip -> 4 mosaics of 128 px (32 px cells: a 4x4 grid each) +
   ``positions_thw.npy`` + the training JSONL with the ``<video>`` rewritten into 4 ``<image>`` lines, exactly the
   upstream stage-2 layout at a small geometry so a tiny model trains in minutes;
3. shape images with captions (image QA for SFT, plain captions for stage 1);
4. ``sft.yaml`` (the mixture the default SFT trains on), ``sft_raw_videos.yaml`` (the same clips as raw videos, for
   the codec-vs-uniform benchmark) and held-out evaluation files with known answers.

Everything is written under ``--out`` and the run is resumable: finished files are kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from llava.atomic_io import write_text
from llava.data.synthetic import (
    COLOURS,
    DIRECTIONS,
    SHAPES,
    ClipSpec,
    clip_questions,
    render_clip,
    render_shape_image,
    write_video,
)
from llava.playground.tiny_checkpoint import PLAYGROUND_GEOMETRY

logger = logging.getLogger("playground")

HERE = Path(__file__).resolve().parent
# Small codec geometry (spec: codec.md; any square/patch/images triple works with cv_reader): the tiny checkpoint's.
SQUARE, PATCH = PLAYGROUND_GEOMETRY["video_square_size"], PLAYGROUND_GEOMETRY["video_patch_size"]
NUM_IMAGES = 4


def _write_json(path: Path, data) -> None:
    if path.suffix == ".jsonl":
        write_text(path, "".join(json.dumps(row) + "\n" for row in data))
    else:
        write_text(path, json.dumps(data, indent=1))


# One static clip for every two moving ones: "does anything move?" is not answered by always saying yes (0.67).
MOTIONS = (None, *DIRECTIONS, None)


def balanced_clip_specs(count: int, *, seed: int) -> list[ClipSpec]:
    """``count`` clip specs whose answers are balanced: motions cycle through ``MOTIONS`` (each direction equally
    often, a third static), colours cycle independently, then the order is shuffled. Random draws left the
    held-out directions skewed (e.g. 17 down vs 7 left in 64 clips), which a majority-answer model exploits."""
    rng = np.random.default_rng(seed)
    colours = list(COLOURS)
    specs = []
    for i in range(count):
        colour = colours[(i // len(MOTIONS)) % len(colours)]
        others = [c for c in colours if c != colour]
        distractor = others[rng.integers(len(others))] if rng.random() < 0.5 else None
        shape = SHAPES[rng.integers(len(SHAPES))]
        specs.append(ClipSpec(colour, MOTIONS[i % len(MOTIONS)], distractor, shape, int(rng.integers(1 << 31))))
    return [specs[i] for i in rng.permutation(count)]


def make_videos(out: Path, *, count: int, split: str, seed: int) -> list[dict]:
    """Renders ``count`` clips; returns raw samples (train: all questions in one conversation; eval: one each)."""
    rng = np.random.default_rng(seed + 1000)
    samples = []
    specs = balanced_clip_specs(count, seed=seed)
    for i in tqdm(range(count), desc=f"{split} videos", unit="clip"):
        spec = specs[i]
        video = out / "videos" / f"{split}_{i:04d}.mp4"
        if not video.is_file():
            write_video(video, render_clip(spec))
        questions = clip_questions(spec)
        rel = str(video.relative_to(out))
        if split == "train":
            order = rng.permutation(len(questions))
            turns = []
            for j, k in enumerate(order):
                _, question, answer = questions[k]
                turns += [{"from": "human", "value": ("<video>\n" if j == 0 else "") + question},
                          {"from": "gpt", "value": answer}]  # fmt: skip
            samples.append({"id": f"{split}_{i:04d}", "video": rel, "conversations": turns, "meta": spec.to_dict()})
        else:
            for kind, question, answer in questions:
                samples.append({
                    "id": f"{split}_{i:04d}_{kind}", "video": rel, "kind": kind, "answer": answer,
                    "conversations": [
                        {"from": "human", "value": "<video>\n" + question}, {"from": "gpt", "value": answer},
                    ],
                })  # fmt: skip
    return samples


def make_images(out: Path, *, count: int, split: str, seed: int) -> tuple[list[dict], list[dict]]:
    """Shape images: (SFT image QA samples, stage-1 caption samples)."""
    rng = np.random.default_rng(seed)
    qa, captions = [], []
    for i in range(count):
        colour, shape = list(COLOURS)[rng.integers(len(COLOURS))], SHAPES[rng.integers(len(SHAPES))]
        path = out / "images" / f"{split}_{i:04d}.png"
        image, caption = render_shape_image(colour, shape, seed=int(rng.integers(1 << 31)))
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
        rel = str(path.relative_to(out))
        qa.append({
            "id": f"img_{split}_{i:04d}", "image": rel, "kind": "shape_colour", "answer": colour,
            "conversations": [{"from": "human", "value": "<image>\nWhat colour is the shape?"},
                              {"from": "gpt", "value": colour}],
        })  # fmt: skip
        captions.append({
            "id": f"cap_{split}_{i:04d}", "image": rel,
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe the image."}, {"from": "gpt", "value": caption},
            ],
        })  # fmt: skip
    return qa, captions


def codec_pack(raw: Path, out_dir: Path, jsonl: Path, *, root: Path, square: int = SQUARE, patch: int = PATCH) -> None:
    """Runs the one-step ``cv_reader pack`` (single decode per video) at the playground geometry."""
    command = [
        sys.executable, "-m", "cv_reader", "pack", "--input_json", str(raw), "--video_root", str(root),
        "--out_image_root", str(out_dir), "--out_jsonl", str(jsonl), "--square_size", str(square),
        "--patch", str(patch), "--num_images", str(NUM_IMAGES), "--num_workers", str(min(2, os.cpu_count() or 1)),
    ]  # fmt: skip
    logger.info("running %s", " ".join(command))
    subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(HERE / "data"))
    # 2,400 clips (1,600 moving): the tiny encoder learns the sign of a motion from 1,600 moving clips (held-out
    # 0.92-0.98) and memorises 200-400 instead (0.53-0.62); see llava/playground/pretrain_encoder.py.
    parser.add_argument("--train-videos", type=int, default=2400)
    parser.add_argument("--eval-videos", type=int, default=192)
    parser.add_argument("--train-images", type=int, default=192)
    parser.add_argument("--eval-images", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--square", type=int, default=SQUARE, help="mosaic side in pixels")
    parser.add_argument("--patch", type=int, default=PATCH, help="selection cell side in pixels")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()  # cv_reader writes the media paths it is given into the JSONL
    out.mkdir(parents=True, exist_ok=True)

    geometry = {"square": args.square, "patch": args.patch}
    train = make_videos(out, count=args.train_videos, split="train", seed=args.seed)
    held_out = make_videos(out, count=args.eval_videos, split="eval", seed=args.seed + 1)
    _write_json(out / "raw_video_train.json", train)
    _write_json(out / "raw_video_eval.json", held_out)
    codec_pack(
        out / "raw_video_train.json", out / "codec" / "train", out / "video_train_codec.jsonl", root=out, **geometry
    )
    codec_pack(
        out / "raw_video_eval.json", out / "codec" / "eval", out / "video_eval_codec.jsonl", root=out, **geometry
    )

    image_qa, captions = make_images(out, count=args.train_images, split="train", seed=args.seed + 2)
    image_eval, _ = make_images(out, count=args.eval_images, split="eval", seed=args.seed + 3)
    _write_json(out / "image_train.json", image_qa)
    _write_json(out / "image_eval.json", image_eval)
    _write_json(out / "captions_stage1.json", captions)
    mixture = {
        "datasets": [
            {"json_path": "video_train_codec.jsonl", "sampling_strategy": "all"},
            {"json_path": "image_train.json", "sampling_strategy": "all"},
        ]
    }
    (out / "sft.yaml").write_text(json.dumps(mixture, indent=1))  # JSON is valid YAML
    # The same clips as raw videos (decoded at training time by the processor's video_mode: codec or uniform).
    mixture["datasets"][0]["json_path"] = "raw_video_train.json"
    (out / "sft_raw_videos.yaml").write_text(json.dumps(mixture, indent=1))
    logger.info("playground data in %s", out)
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
