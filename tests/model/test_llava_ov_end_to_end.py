"""Processor + model together on every input kind in one batch: image, codec video (mosaics + positions_thw), raw
video file (on-the-fly cv_reader selection and uniform frames), text only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from llava.data.synthetic import ClipSpec, render_clip, write_video
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.model.llava_ov.video_inputs import VideoFrames
from llava.playground.tiny_checkpoint import build_tiny_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("e2e") / "ckpt")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("media")
    frames = render_clip(ClipSpec("red", "right", "blue", "square", seed=3), frames=16)
    Image.fromarray(frames[0]).save(root / "image.png")
    video = write_video(root / "clip.mp4", frames)
    mosaics = [root / f"mosaic_{i}.jpg" for i in range(4)]
    for i, path in enumerate(mosaics):
        Image.fromarray(frames[4 * i, :112, :112]).save(path)
    t = np.repeat([0, 21, 42, 63], 64)
    hw = np.tile(np.stack(np.meshgrid(np.arange(8), np.arange(8), indexing="ij"), -1).reshape(-1, 2), (4, 1))
    positions = np.concatenate([t[:, None], hw], 1).astype(np.int32)
    np.save(root / "positions_thw.npy", positions)
    return {"image": root / "image.png", "video": video, "mosaics": mosaics, "positions": root / "positions_thw.npy"}


def _conversation(marker: str, question: str) -> list[dict]:
    return [{"from": "human", "value": f"{marker}{question}"}, {"from": "gpt", "value": "red"}]


@pytest.mark.parametrize("video_mode", ["codec", "uniform"])
def test_mixed_batch_of_every_input_kind(tiny, media, video_mode):
    processor = LlavaOVProcessor.from_pretrained(tiny, video_mode=video_mode)
    model = LlavaOVForConditionalGeneration.from_pretrained(tiny).train()
    conversations = [
        _conversation("<image>\n", "What colour is the shape?"),
        _conversation("<video>\n", "What colour is the moving object?"),
        _conversation("<video>\n", "Which way does the object move?"),
        _conversation("", "Say red."),
    ]
    codec = VideoFrames(frames=[str(p) for p in media["mosaics"]], positions_thw=str(media["positions"]))
    batch = processor(
        conversations=conversations, images=[[str(media["image"])], None, None, None],
        videos=[None, [codec], [str(media["video"])], None],
    )  # fmt: skip
    assert len(batch["pixel_values"]) == 3  # image, codec video, raw video: one ViT item each
    assert batch["pixel_values"][1].shape == (3, 4, 112, 112) and batch["pixel_values"][2].dim() == 4
    raw_positions = batch["patch_positions"][2]
    if video_mode == "uniform":
        assert sorted(set(raw_positions[:, 0].tolist())) == [0, 21, 42, 63]  # linspace(0, 63, 4)
    else:
        assert raw_positions[:, 0].max() > 0 and len(raw_positions) == 4 * 64
    placeholders = (batch["input_ids"] == processor.image_token_id).sum().item()
    # one LLM token per ViT patch: frames x (H / 14) x (W / 14) per item (an image is one frame)
    patches = [(p.shape[-3] if p.dim() == 4 else 1) * (p.shape[-2] // 14) * (p.shape[-1] // 14)
               for p in batch["pixel_values"]]  # fmt: skip
    assert placeholders == sum(patches)
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert model.model.vision_tower.embeddings.patch_embedding.weight.grad.abs().sum() > 0
