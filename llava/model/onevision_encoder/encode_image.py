"""Encodes images with the OneVision-Encoder and reports the feature shapes.

    python -m llava.model.onevision_encoder.encode_image --model_path DIR --images a.jpg b.png [--resize_mode native]

With no ``--model_path`` a tiny random checkpoint is built in ``checkpoints/ov_encoder_tiny`` (upstream layout)
so the command works on a fresh machine without downloads. ``--resize_mode native`` keeps each image's aspect ratio
and encodes all of them packed in one sequence (no padding).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModel, HfArgumentParser

from llava.model import OneVisionEncoderImageProcessor
from llava.model.onevision_encoder.checkpoint import build_random_checkpoint

logger = logging.getLogger("llava.model.onevision_encoder.encode_image")

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class EncodeArguments:
    model_path: str | None = field(default=None, metadata={"help": "encoder folder; default: a tiny random one"})
    images: list[str] = field(
        default_factory=lambda: [str(REPO_ROOT / "playground" / "images" / "shapes.png")],
        metadata={"help": "image files to encode"},
    )
    resize_mode: str = field(default="clip", metadata={"help": "clip (448 crop), native, or pad_to_square"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or flash_attention_2"})
    dtype: str = field(default="float32", metadata={"help": "float32, bfloat16 or float16"})
    device: str = field(default="cpu")


def resolve_model_path(model_path: str | None) -> Path:
    """The given folder, or the embedded tiny checkpoint (built on first use)."""
    if model_path is not None:
        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a model folder (no config.json)")
        return path
    path = REPO_ROOT / "checkpoints" / "ov_encoder_tiny"
    if not (path / "model.safetensors").is_file():
        logger.info("no --model_path given: building a tiny random encoder in %s", path)
        build_random_checkpoint(path)
    return path


def encode(args: EncodeArguments) -> list[tuple[str, tuple[int, ...]]]:
    """Encodes ``args.images``; returns (image, feature shape) pairs."""
    model_path = resolve_model_path(args.model_path)
    dtype = getattr(torch, args.dtype)
    model = AutoModel.from_pretrained(model_path, dtype=dtype, attn_implementation=args.attn_implementation)
    model = model.to(args.device).eval()
    # Our processor reads upstream preprocessor configs too, and adds the native and pad-to-square modes.
    processor = OneVisionEncoderImageProcessor.from_pretrained(model_path, resize_mode=args.resize_mode)
    images = []
    for name in args.images:
        try:
            images.append(Image.open(name).convert("RGB"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{name}: cannot read the image ({error})") from error
    pixel_values = processor(images=images, return_tensors="pt").pixel_values
    start = time.perf_counter()
    with torch.inference_mode():
        if isinstance(pixel_values, list):  # native mode: one packed sequence, no padding
            out = model([p.to(args.device, dtype) for p in pixel_values])
            lengths = (out.cu_seqlens[1:] - out.cu_seqlens[:-1]).tolist()
            features = out.last_hidden_state[0].split(lengths)
        else:
            features = model(pixel_values.to(args.device, dtype)).last_hidden_state
    seconds = time.perf_counter() - start
    config = model.config
    logger.info(
        "encoder %s: %d layers, width %d, head %s, %s on %s; %d image(s) in %.2f s",
        model_path, config.num_hidden_layers, config.hidden_size, config.use_head, args.dtype, args.device,
        len(images), seconds,
    )  # fmt: skip
    return [(name, tuple(f.shape)) for name, f in zip(args.images, features, strict=True)]


def main(argv: list[str] | None = None) -> list[tuple[str, tuple[int, ...]]]:
    (args,) = HfArgumentParser(EncodeArguments).parse_args_into_dataclasses(args=argv)
    results = encode(args)
    for name, shape in results:
        print(f"{name}: features {list(shape)} (tokens x width)")
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
