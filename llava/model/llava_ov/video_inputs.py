"""Video inputs of the LLaVA-OV processor: codec mosaics with positions, uniformly sampled frames, and on-the-fly
codec selection through `cv_reader` (spec: shared/specs/llava_model_and_training.md sections 3.4-3.5, codec.md 8).

A video is always ONE item for the vision tower: T images of the same size plus one (t, h, w) row per patch in
token order (image-major, row-major). Codec videos take their positions from selection (`positions_thw`); uniform
frames take t = linspace(0, temporal_size - 1, T) with a raster (h, w) per frame.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class VideoFrames:
    """A video given as frames. `frames`: T images (PIL images, uint8 arrays or image paths), all treated as one ViT
    item. `positions_thw`: int [T * g * g, 3] (t, h, w) per patch in mosaic token order (a codec video, spec codec.md
    section 8.6), a path to such a `.npy` file, or None for uniform frames (positions t = linspace(0, 63, T))."""

    frames: Sequence[Any]
    positions_thw: np.ndarray | str | Path | None = None


def uniform_positions(*, num_frames: int, grid: int, temporal_size: int = 64) -> np.ndarray:
    """(t, h, w) of `num_frames` dense frames of `grid` x `grid` patches: int64 [num_frames * grid * grid, 3] with
    t = linspace(0, temporal_size - 1, num_frames) truncated (0, 9, ..., 63 for 8 frames: spec section 3.5)."""
    times = np.linspace(0, temporal_size - 1, num_frames).astype(np.int64)
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    per_frame = np.stack([rows.ravel(), cols.ravel()], axis=1)  # (grid*grid, 2)
    positions = np.concatenate(
        [np.concatenate([np.full((grid * grid, 1), t, dtype=np.int64), per_frame], axis=1) for t in times]
    )
    return positions


def load_positions(positions: np.ndarray | str | Path, *, num_frames: int) -> tuple[np.ndarray, int]:
    """Loads and validates codec positions; returns (int64 [K, 3], grid) with K = num_frames * grid**2."""
    array = np.load(positions) if isinstance(positions, (str, Path)) else np.asarray(positions)
    if array.ndim != 2 or array.shape[1] != 3 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"positions_thw ({positions if isinstance(positions, (str, Path)) else 'array'}): expected "
            f"an integer array [K, 3], got {array.dtype} {list(array.shape)}"
        )
    grid = positions_grid(int(array.shape[0]), num_frames=num_frames)
    return array.astype(np.int64), grid


def positions_grid(num_positions: int, *, num_frames: int) -> int:
    """Side of the square patch grid of each mosaic: K = num_frames * grid**2 (36 for the 10368-row codec files)."""
    per_frame, remainder = divmod(num_positions, max(num_frames, 1))
    grid = math.isqrt(per_frame)
    if num_frames <= 0 or remainder or grid * grid != per_frame or grid == 0:
        raise ValueError(
            f"positions_thw has {num_positions} rows, which is not {num_frames} mosaics of a square patch grid"
        )
    return grid


def read_uniform_frames(path: str | Path, *, num_frames: int) -> list[np.ndarray]:
    """`num_frames` RGB uint8 [H, W, 3] frames, uniformly spaced over the video, decoded by `cv_reader`, turned to
    their display orientation (rotation metadata of phone videos), as the codec path shows them.

    The frame count and the indices are cv_reader's (`probe_video`: non-empty packets in display order;
    `sample_frame_ids`: floor(linspace(0, N - 1, num_frames))), the same rule as the codec path, so the uniform and
    codec videos of one file sample the same frames. Decoding stops after the last wanted frame. A wanted frame that
    cannot be decoded (a stream cut before a keyframe, a damaged tail) repeats the nearest decoded one (logged).

    Raises:
        cv_reader.VideoReadError: the file is missing, not a video, or has no decodable frame.
    """
    cv_reader = _cv_reader()
    from cv_reader.decode import frame_orientation, read_frames, upright_rgb

    def upright(frame) -> np.ndarray:
        rotation, mirror = frame_orientation(frame)
        return upright_rgb(frame, rotation=rotation, mirror=mirror)

    info = cv_reader.probe_video(path)
    wanted = cv_reader.sample_frame_ids(info.num_frames, num_frames).tolist()
    by_index = read_frames(path, wanted, upright, info=info)
    return [by_index[index] for index in wanted]


def _cv_reader():
    try:
        import cv_reader
    except ImportError as error:
        raise ImportError("raw-video input needs the `cv_reader` package (pip install -e .)") from error
    return cv_reader


def select_codec_video(
    path: str | Path, *, num_images: int, square_size: int, patch_size: int, num_frames: int = 64
) -> VideoFrames:
    """On-the-fly codec patch selection with `cv_reader.select_patches`: `num_images` mosaics of `square_size` px and
    their positions (patch grid square_size / patch_size)."""
    selection = _cv_reader().select_patches(
        str(path), num_frames=num_frames, num_images=num_images, square_size=square_size, patch_size=patch_size
    )
    return VideoFrames(frames=list(selection.mosaics()), positions_thw=np.asarray(selection.positions_thw))


__all__ = [
    "VideoFrames",
    "load_positions",
    "positions_grid",
    "read_uniform_frames",
    "select_codec_video",
    "uniform_positions",
]
