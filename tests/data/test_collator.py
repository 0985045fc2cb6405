"""LlavaOVCollator: padding and packing give the same per-sample tokens, labels and positions; packed rows carry no
cross-sample supervision; a tiny Qwen3 computes the same logits for packed and padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from llava.data import LlavaOVCollator
from llava.model.llava_ov.processing_llava_ov import IGNORE_INDEX
from llava.model.llava_ov.video_inputs import VideoFrames

from .helpers import make_image


def conversation(question: str, answer: str, *, image: bool) -> list[dict]:
    return [{"from": "human", "value": ("<image>\n" if image else "") + question}, {"from": "gpt", "value": answer}]


@pytest.fixture()
def samples(small_processor) -> list[dict]:
    specs = [
        ("What is shown?", "A red square.", True),
        ("Hi", "Hello.", False),
        ("Which way?", "Left.", True),
        ("Does anything move? Describe the video in detail.", "No, nothing moves.", False),
    ]
    out = []
    for index, (question, answer, image) in enumerate(specs):
        images = [make_image(30 + index, 20, seed=index)] if image else []
        out.append(small_processor.process_conversation(conversation(question, answer, image=image), images=images))
    # A uniform-frame video (one item, 4 frames x 16 tokens, with positions) in the middle of the batch.
    frames = [np.asarray(make_image(64, 64, seed=20 + i)) for i in range(4)]
    video = [{"from": "human", "value": "<video>\nWhat moves?"}, {"from": "gpt", "value": "A square."}]
    out.insert(2, small_processor.process_conversation(video, videos=[VideoFrames(frames)]))
    return out


def unpack(batch: dict) -> list[tuple[list[int], list[int], list[int]]]:
    """(input_ids, labels, position_ids) per sample, split where position_ids restart (padding pseudo-samples
    have only -100 labels and pad ids and are dropped by the caller)."""
    pieces = []
    for row in range(batch["input_ids"].shape[0]):
        positions = batch["position_ids"][row].tolist()
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        for start, end in zip(starts[:-1], starts[1:], strict=True):
            pieces.append(
                (
                    batch["input_ids"][row, start:end].tolist(),
                    batch["labels"][row, start:end].tolist(),
                    positions[start:end],
                )
            )
    return pieces


@pytest.mark.parametrize("budget", [None, 60, 1])
def test_packing_equals_padding_per_sample(samples, small_processor, budget):
    pad_id = small_processor.tokenizer.pad_token_id
    padded = LlavaOVCollator(pad_token_id=pad_id)(samples)
    packed = LlavaOVCollator(pad_token_id=pad_id, packing=True, max_tokens_per_row=budget)(samples)
    assert "attention_mask" not in packed and "attention_mask" in padded
    lengths = padded["attention_mask"].sum(1).tolist()
    pieces = unpack(packed)
    real = [p for p in pieces if any(t != pad_id for t in p[0])]  # drop tail-padding pseudo-samples
    assert len(real) == len(samples)
    for index, (ids, labels, positions) in enumerate(real):
        n = lengths[index]
        assert ids == padded["input_ids"][index, :n].tolist() == samples[index]["input_ids"].tolist()
        assert labels == padded["labels"][index, :n].tolist()
        assert positions == list(range(n))
        assert labels[0] == IGNORE_INDEX  # no prediction across the boundary
    if budget is None:
        assert packed["input_ids"].shape[0] == 1
    if budget == 1:
        assert packed["input_ids"].shape[0] == len(samples)  # each sample over budget gets its own row
    # Visual items stay flat in sample order in both modes.
    assert [p.data_ptr() for p in packed["pixel_values"]] == [p.data_ptr() for p in padded["pixel_values"]]
    assert len(packed["pixel_values"]) == 3 and packed["patch_positions"][0::2] == [None, None]
    assert tuple(packed["pixel_values"][1].shape) == (3, 4, 56, 56) and packed["patch_positions"][1].shape == (64, 3)


def test_padding_masks_and_labels(samples, small_processor):
    pad_id = small_processor.tokenizer.pad_token_id
    batch = LlavaOVCollator(pad_token_id=pad_id, pad_to_multiple_of=8)(samples)
    assert batch["input_ids"].shape[1] % 8 == 0
    for row, sample in enumerate(samples):
        n = len(sample["input_ids"])
        assert batch["attention_mask"][row, :n].all() and not batch["attention_mask"][row, n:].any()
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()


def test_tiny_qwen3_packed_logits_equal_padded(samples, small_processor):
    """Text-level check of the packed path in transformers 5: position resets isolate the samples."""
    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=len(small_processor.tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
    )
    model = Qwen3ForCausalLM(config).eval()
    pad_id = small_processor.tokenizer.pad_token_id
    padded = LlavaOVCollator(pad_token_id=pad_id)(samples)
    packed = LlavaOVCollator(pad_token_id=pad_id, packing=True)(samples)
    with torch.no_grad():
        padded_logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        packed_logits = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits
    start = 0
    for row, sample in enumerate(samples):
        n = len(sample["input_ids"])
        torch.testing.assert_close(packed_logits[0, start : start + n], padded_logits[row, :n], atol=1e-5, rtol=1e-5)
        start += n


def test_tiny_llava_ov_mixed_batch_packed_equals_padded(tmp_path):
    """End to end with the model: image, codec video, raw video and text-only samples give the same loss and
    per-sample logits padded and packed (the model helper's tiny checkpoint; skipped while it is absent)."""
    from llava.model.llava_ov.processing_llava_ov import LlavaOVProcessor
    from llava.model.onevision_encoder.image_processing_onevision_encoder import OneVisionEncoderImageProcessor
    from llava.playground import tiny_checkpoint as tiny

    from .helpers import write_video

    folder = tiny.build_tiny_checkpoint(tmp_path / "tiny")
    model = tiny.load_tiny_model(folder)
    processor = LlavaOVProcessor(
        OneVisionEncoderImageProcessor.from_pretrained(folder),
        tiny.build_tiny_tokenizer(),
        image_aspect_ratio="square",
        image_size=112,
        num_video_frames=4,
        video_mode="uniform",
        video_square_size=128,
        video_patch_size=16,
    )
    rng = np.random.default_rng(0)
    codec = VideoFrames(
        [np.asarray(make_image(128, 128, seed=i)) for i in range(4)], rng.integers(0, 8, (4 * 64, 3)).astype(np.int32)
    )
    clip = write_video(tmp_path / "clip.mp4", num_frames=12)
    answer = "A red square moves left."
    samples = [
        processor.process_conversation(conversation("What?", answer, image=True), images=[make_image(50, 40)]),
        processor.process_conversation(conversation("<video>\nWhat moves?", answer, image=False), videos=[codec]),
        processor.process_conversation(conversation("<video>\nWhat moves?", answer, image=False), videos=[clip]),
        processor.process_conversation(conversation("Hi", answer, image=False)),
    ]
    pad_id = processor.tokenizer.pad_token_id
    padded = LlavaOVCollator(pad_token_id=pad_id)(samples)
    packed = LlavaOVCollator(pad_token_id=pad_id, packing=True)(samples)
    with torch.no_grad():
        padded_out = model(**padded, use_cache=False)
        packed_out = model(**packed, use_cache=False)
    torch.testing.assert_close(packed_out.loss, padded_out.loss, atol=1e-5, rtol=1e-5)
    start = 0
    for row, sample in enumerate(samples):
        n = len(sample["input_ids"])
        torch.testing.assert_close(
            packed_out.logits[0, start : start + n], padded_out.logits[row, :n], atol=1e-5, rtol=1e-5
        )
        start += n
