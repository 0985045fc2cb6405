"""Test helpers for the processor and data pipeline: a tiny byte-level BPE tokenizer with the Qwen special tokens,
built locally (no network), and small synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from llava.data import synthetic

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<think>",
    "</think>",
]

_CORPUS = [
    "You are a helpful assistant.",
    "What is shown in the image? A red square moves to the left on a grey background.",
    "Which way does the object move? It moves to the right. Does anything move? No, nothing moves.",
    "Describe the video in detail. The blue circle bounces up and down.",
    "user assistant system the a an of in on to is are what which colour color",
]


def build_test_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """Trains a ~400-token byte-level BPE on a few sentences, adds the special tokens, saves it to `folder` and
    loads it back with `AutoTokenizer` (eos = pad = `<|endoftext|>`, right padding, as Qwen3 base)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    folder.mkdir(parents=True, exist_ok=True)
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        padding_side="right",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    wrapped.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def make_image(width: int, height: int, *, seed: int = 0) -> PIL.Image.Image:
    """A random RGB image of `width` x `height` pixels."""
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def write_video(path: Path, *, num_frames: int = 24, size: int = 64, fps: int = 12) -> Path:
    """A small H.264 clip (grey background, a white square moving right), encoded by the project's clip writer."""
    frames = np.full((num_frames, size, size, 3), 96, dtype=np.uint8)
    for index in range(num_frames):
        left = 4 + index * (size - 24) // max(num_frames - 1, 1)
        frames[index, 24:40, left : left + 16] = 255
    return synthetic.write_video(path, frames, fps=fps)
