"""Motion can reach the model: codec positions carry the direction of a clip, the mosaic tokens and their
`positions_thw` rows stay aligned from the processor to the encoder, and the model's output depends on the `t` of
the patch positions (issue 11: the default learned nothing about direction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cv_reader
from llava.data.synthetic import ClipSpec, render_clip, write_video
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.model.llava_ov.video_inputs import VideoFrames
from llava.playground.tiny_checkpoint import build_tiny_checkpoint

SQUARE, PATCH, IMAGES = 128, 16, 4  # the playground geometry (8 x 8 cells per mosaic)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("motion") / "ckpt")


@pytest.fixture(scope="module")
def mirrored_clips(tmp_path_factory) -> dict[str, VideoFrames]:
    """A clip moving right and the same frames played backwards (moving left), through codec selection."""
    root = tmp_path_factory.mktemp("mirrored")
    frames = render_clip(ClipSpec("red", "right", None, "square", seed=5))
    clips = {}
    for name, clip in (("right", frames), ("left", frames[::-1].copy())):
        selection = cv_reader.select_patches(
            write_video(root / f"{name}.mp4", clip), num_images=IMAGES, square_size=SQUARE, patch_size=PATCH
        )
        clips[name] = VideoFrames(frames=selection.mosaics(), positions_thw=np.asarray(selection.positions_thw))
    return clips


def _horizontal_drift(positions: np.ndarray) -> float:
    """Slope of the mean column of the cells kept after the full first frame, against t (cells per t step)."""
    motion = positions[positions[:, 0] > 0]
    times = np.unique(motion[:, 0])
    columns = np.array([motion[motion[:, 0] == t, 2].mean() for t in times])
    return float(np.polyfit(times, columns, 1)[0])


def test_codec_positions_of_time_mirrored_clips_drift_in_opposite_directions(mirrored_clips):
    right = _horizontal_drift(np.asarray(mirrored_clips["right"].positions_thw))
    left = _horizontal_drift(np.asarray(mirrored_clips["left"].positions_thw))
    assert right > 0.02 and left < -0.02  # ~0.6 of the width over the clip: a few cells over 63 steps of t


def test_processor_keeps_mosaic_tokens_and_positions_in_the_same_order(tiny):
    """Every cell of a mosaic gets its own colour; token k of the video (image-major, row-major) must show the
    colour of the cell that `positions_thw` row k describes."""
    processor = LlavaOVProcessor.from_pretrained(tiny)
    grid = SQUARE // PATCH
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(IMAGES, grid, grid, 3), dtype=np.uint8)
    mosaics = [np.kron(colours[i], np.ones((PATCH, PATCH, 1), dtype=np.uint8)) for i in range(IMAGES)]
    positions = np.stack(
        np.unravel_index(rng.permutation(64 * grid * grid)[: IMAGES * grid * grid], (64, grid, grid)), 1
    )
    positions = positions[np.lexsort((positions[:, 2], positions[:, 1], positions[:, 0]))]
    pixel_values, patch_positions = processor.preprocess_video(VideoFrames(frames=mosaics, positions_thw=positions))
    assert torch.equal(patch_positions, torch.from_numpy(positions.astype(np.int64)))
    side = processor.patch_size
    # (3, T, S, S) -> (T * g * g, 3): the centre pixel of each 14 px patch, in the encoder's token order
    centres = pixel_values[:, :, side // 2 :: side, side // 2 :: side].permute(1, 2, 3, 0).reshape(-1, 3)
    expected = torch.from_numpy(colours.reshape(-1, 3).astype(np.float32))
    # normalised pixels: the same affine map per channel, so the order shows in the correlation per channel
    for channel in range(3):
        correlation = torch.corrcoef(torch.stack([centres[:, channel], expected[:, channel]]))[0, 1]
        assert correlation > 0.99


def test_encoder_is_equivariant_to_a_joint_permutation_of_tokens_and_positions(tiny):
    """Permuting the patches of a video together with their position rows permutes the features the same way:
    the encoder reads each token's (t, h, w) from its own row (RoPE only, no position taken from the layout)."""
    model = LlavaOVForConditionalGeneration.from_pretrained(tiny).eval()
    torch.manual_seed(0)
    grid, side = 8, 14
    pixel_values = torch.randn(3, IMAGES, grid * side, grid * side)
    positions = torch.stack(torch.meshgrid(torch.arange(IMAGES) * 21, torch.arange(grid), torch.arange(grid),
                                           indexing="ij"), -1).reshape(-1, 3)  # fmt: skip
    # patches as tokens: (3, T, g*14, g*14) -> (T*g*g, 3, 14, 14) and back
    patches = (
        pixel_values.reshape(3, IMAGES, grid, side, grid, side).permute(1, 2, 4, 0, 3, 5).reshape(-1, 3, side, side)
    )
    order = torch.randperm(patches.shape[0])
    shuffled = patches[order].reshape(IMAGES, grid, grid, 3, side, side).permute(3, 0, 1, 4, 2, 5)
    shuffled = shuffled.reshape(3, IMAGES, grid * side, grid * side)
    with torch.inference_mode():
        base = model.model.get_image_features([pixel_values], patch_positions=[positions])
        permuted = model.model.get_image_features([shuffled], patch_positions=[positions[order]])
    torch.testing.assert_close(permuted, base[order], atol=1e-4, rtol=1e-4)


def test_model_output_changes_when_the_time_of_patch_positions_is_permuted(tiny, mirrored_clips):
    processor = LlavaOVProcessor.from_pretrained(tiny)
    model = LlavaOVForConditionalGeneration.from_pretrained(tiny).eval()
    video = mirrored_clips["right"]
    positions = np.asarray(video.positions_thw).copy()
    later = positions[:, 0] > 0
    positions[later, 0] = 64 - positions[later, 0]  # the same cells, played backwards after the first frame
    conversation = [{"from": "human", "value": "<video>\nWhich way does the object move?"}]
    logits = []
    for thw in (np.asarray(video.positions_thw), positions):
        batch = processor([conversation], videos=[[VideoFrames(frames=video.frames, positions_thw=thw)]],
                          add_generation_prompt=True)  # fmt: skip
        with torch.inference_mode():
            logits.append(model(**batch).logits[0, -1])
    assert not torch.allclose(logits[0], logits[1], atol=1e-4)
