"""Letterboxed RGB of sampled frames (spec 5): the pixels of the mosaics, from the same decode as the signals."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np

from .decode import RgbScaler, VideoInfo, frame_orientation, read_frames, rgb_resized
from .geometry import Letterbox, letterbox

logger = logging.getLogger(__name__)


def letterboxed_content(
    frame: av.VideoFrame, box: Letterbox, *, rotation: int, mirror: bool = False, scaler: RgbScaler | None = None
) -> np.ndarray:
    """uint8 [Hn, Wn, 3] RGB content rectangle of the letterboxed frame (display orientation).

    Scaled by swscale with area averaging (anti-aliased, `RgbScaler`; upstream used OpenCV bilinear on BGR, spec 5),
    and turned by the display rotation (counter-clockwise degrees), then flipped if the display matrix mirrors.
    """
    return rgb_resized(frame, height=box.Hn, width=box.Wn, scaler=scaler, rotation=rotation, mirror=mirror)


def read_letterboxed_frames(
    video_path: str | Path, frame_ids: np.ndarray, *, square_size: int = 576, info: VideoInfo | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode only the pixels of `frame_ids` (one pass, stops after the last one), letterboxed as in spec 5.
    `info`: the file's `probe_video`, when the caller has it.

    Returns:
        `(frames, frame_of_t)`: uint8 [F, S, S, 3] canvases of the distinct frames and int64 [T] row per t.
        A frame that cannot be decoded shows the nearest decoded one (logged).
    """
    frame_ids = np.asarray(frame_ids, dtype=np.int64)
    distinct = sorted(set(frame_ids.tolist()))
    row = {idx: n for n, idx in enumerate(distinct)}
    scaler = RgbScaler()
    box, rotation, mirror = None, 0, False

    def content(frame: av.VideoFrame) -> np.ndarray:
        nonlocal box, rotation, mirror
        if box is None:  # every frame is at the stream's first size (`read_frames`)
            rotation, mirror = frame_orientation(frame)
            h0, w0 = (frame.width, frame.height) if rotation in (90, 270) else (frame.height, frame.width)
            box = letterbox(h0, w0, out_size=square_size)
        return letterboxed_content(frame, box, rotation=rotation, mirror=mirror, scaler=scaler)

    # Indexed as select_patches indexes frames, so that the pixels match a stored selection even where frames cannot
    # be decoded (a stream cut before a keyframe).
    contents = read_frames(video_path, distinct, content, info=info)
    frames = np.zeros((len(distinct), square_size, square_size, 3), dtype=np.uint8)
    for index, pixels in contents.items():
        frames[row[index], box.pad_top : box.pad_top + box.Hn, box.pad_left : box.pad_left + box.Wn] = pixels
    frame_of_t = np.array([row[i] for i in frame_ids.tolist()], dtype=np.int64)
    return frames, frame_of_t
