"""A tiny random LLaVA-OV checkpoint for tests and CPU smoke runs, built offline.

The tokenizer is a byte-level BPE trained here with the ``tokenizers`` library on a small embedded English corpus
(:mod:`llava.playground.corpus`) plus Qwen's special tokens. Their ids differ from Qwen's: always resolve them with
``convert_tokens_to_ids``. The model is assembled through the same path as real weights (an OV-Encoder folder + a
Qwen3 folder -> ``assemble_from_pretrained``).

``python -m llava.playground.tiny_checkpoint OUT [--image-size 56] [--video-patch-size 32] [--seed 0]`` (the CLI's
defaults are the playground geometry, :data:`PLAYGROUND_GEOMETRY`; the function's are the tests' 112 px / 16 px).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor, OneVisionEncoderImageProcessor
from llava.model.llava_ov.conversion import assemble_from_pretrained
from llava.model.onevision_encoder.checkpoint import build_random_checkpoint
from llava.model.onevision_encoder.presets import onevision_encoder_tiny

from .corpus import tiny_corpus

logger = logging.getLogger(__name__)

# Qwen3's special tokens (contract "Tokens and ids"); `<think>`/`</think>` are ordinary added tokens in Qwen3.
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<|video_pad|>",
)  # fmt: skip
THINK_TOKENS = ("<think>", "</think>")


def build_tiny_tokenizer(*, vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on :func:`tiny_corpus` with Qwen's special tokens; offline, deterministic.

    ``<|endoftext|>`` is the pad and eos token (as in the Qwen3 tokenizer files); no BOS.
    """
    backend = Tokenizer(models.BPE())
    # Byte level: every string is encodable, including newlines and text the corpus never saw.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(tiny_corpus(), trainer=trainer)
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    backend.add_tokens(list(THINK_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=32768
    )


def tiny_text_config(vocab_size: int, **overrides: Any) -> Qwen3Config:
    """Qwen3 with hidden 64, 2 layers, 4 query / 2 key-value heads of 16, MLP 128, tied embeddings."""
    fields = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
    }
    return Qwen3Config(**{**fields, **overrides})


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def build_tiny_checkpoint(
    folder: str | os.PathLike,
    *,
    image_size: int = 112,
    patch_size: int = 14,
    seed: int = 0,
    vision_overrides: dict[str, Any] | None = None,
    text_overrides: dict[str, Any] | None = None,
    video_images: int = 4,
    video_square_size: int = 128,
    video_patch_size: int = 16,
) -> Path:
    """Writes a random LLaVA-OV checkpoint folder: config.json, model.safetensors, generation_config.json, tokenizer
    files and ``preprocessor_config.json`` (pad-to-square at ``image_size``, the LLaVA-OV video/stage-1 pipeline).

    Geometry: ``image_size`` pixels square with ``patch_size`` pixel patches (112 / 14 = 8 x 8 patches per image or
    mosaic). Encoder: the ``tiny`` preset (128 wide, 2 layers; the model keeps 1 for ``vision_feature_layer=-2``),
    initialised with std ``1 / sqrt(width)`` instead of the preset's 0.02: at 0.02 the attention logits of a 128-wide
    layer are ~0.05, attention is uniform, and the features move by 1e-4 of their norm when the (t, h, w) of the
    patches change, so the 3-D RoPE (the only way position enters) is invisible and receives almost no gradient
    (issue 11: the default learned colour but not direction). At ``1 / sqrt(width)`` they move by ~5%.
    LM: :func:`tiny_text_config` with the vocabulary rounded up to a multiple of 64, also initialised at
    ``1 / sqrt(width)``: at 0.02 its attention is uniform too, so the answer position sees the question through
    1/300 of its weight beside the visual tokens and the model answers every question with the answer prior.
    """
    if image_size % patch_size:
        raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
    folder = Path(folder)
    tokenizer = build_tiny_tokenizer()
    vision_fields = {"image_size": image_size, "patch_size": patch_size, **(vision_overrides or {})}
    width = vision_fields.get("hidden_size", onevision_encoder_tiny().hidden_size)
    vision_config = onevision_encoder_tiny(**{"initializer_range": width**-0.5, **vision_fields})
    text_fields = dict(text_overrides or {})
    text_width = text_fields.get("hidden_size", tiny_text_config(64).hidden_size)
    text_config = tiny_text_config(
        _round_up(len(tokenizer), 64), **{"initializer_range": text_width**-0.5, **text_fields}
    )
    with tempfile.TemporaryDirectory(prefix="llava_ov_tiny_") as scratch:
        vision_dir, text_dir = Path(scratch, "vision"), Path(scratch, "text")
        build_random_checkpoint(vision_dir, config=vision_config, seed=seed)
        torch.manual_seed(seed)
        Qwen3ForCausalLM(text_config).save_pretrained(text_dir)
        tokenizer.save_pretrained(text_dir)
        torch.manual_seed(seed + 1)  # the projector is freshly initialised by assembly
        model = assemble_from_pretrained(vision_dir, text_dir, dtype=torch.float32)
    model.config.text_config.name_or_path = ""  # the scratch folder is gone
    model.generation_config = tiny_generation_config(tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor = OneVisionEncoderImageProcessor(
        resize_mode="pad_to_square", size={"height": image_size, "width": image_size}, patch_size=patch_size,
        do_center_crop=False,
    )  # fmt: skip
    # The processor owns the prompt and the geometry: images padded to `image_size`, codec videos of
    # `video_images` mosaics cut at `video_square_size` / `video_patch_size` (the playground geometry).
    LlavaOVProcessor(
        image_processor=image_processor, tokenizer=tokenizer, image_aspect_ratio="pad", image_size=image_size,
        num_video_frames=video_images, video_square_size=video_square_size, video_patch_size=video_patch_size,
    ).save_pretrained(folder)  # fmt: skip
    return folder


# The playground default (issue 11): 128 px codec mosaics cut in 32 px cells, 4 x 4 tokens per mosaic, 64 per clip,
# and 56 px images (4 x 4 tokens). Four times fewer tokens than 16 px cells: steps are ~3.5x cheaper on a CPU and the
# LM's attention is spread over 64 visual tokens instead of 256, so the 3-minute budget holds ~1000 steps. A 32 px cell
# still resolves the motion: the object travels 0.6 of the frame, ~2.4 cells, over the clip.
PLAYGROUND_GEOMETRY = {"image_size": 56, "video_square_size": 128, "video_patch_size": 32}


def build_playground_checkpoint(folder: str | os.PathLike, *, seed: int = 0) -> Path:
    """:func:`build_tiny_checkpoint` at the playground geometry (what ``scripts/sft_ov_encoder.sh`` trains)."""
    return build_tiny_checkpoint(folder, seed=seed, **PLAYGROUND_GEOMETRY)


def tiny_generation_config(tokenizer: PreTrainedTokenizerFast) -> GenerationConfig:
    """Stops at ``<|im_end|>`` (end of an assistant turn) or ``<|endoftext|>``; greedy by default."""
    stop = [tokenizer.convert_tokens_to_ids(token) for token in ("<|im_end|>", "<|endoftext|>")]
    return GenerationConfig(eos_token_id=stop, pad_token_id=tokenizer.pad_token_id, do_sample=False)


def load_tiny_model(folder: str | os.PathLike) -> LlavaOVForConditionalGeneration:
    """The model of a folder written by :func:`build_tiny_checkpoint`, in eval mode."""
    return LlavaOVForConditionalGeneration.from_pretrained(folder).eval()


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--image-size", type=int, default=PLAYGROUND_GEOMETRY["image_size"])
    parser.add_argument("--patch-size", type=int, default=14)
    parser.add_argument("--video-square-size", type=int, default=PLAYGROUND_GEOMETRY["video_square_size"],
                        help="codec mosaic side in pixels")  # fmt: skip
    parser.add_argument("--video-patch-size", type=int, default=PLAYGROUND_GEOMETRY["video_patch_size"],
                        help="codec cell side in pixels")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = build_tiny_checkpoint(
        args.out, image_size=args.image_size, patch_size=args.patch_size, seed=args.seed,
        video_square_size=args.video_square_size, video_patch_size=args.video_patch_size,
    )  # fmt: skip
    logger.info("wrote %s", folder)
    return folder


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
