"""Letterboxed RGB of sampled frames (spec 5): the pixels of the mosaics, from the same decode as the signals."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np

from .decode import (
    RgbScaler,
    frame_rotation,
    iter_indexed_frames,
    nearest_decoded,
    probe_video,
    rgb_resized,
    same_size_frame,
)
from .geometry import Letterbox, letterbox

logger = logging.getLogger(__name__)


def letterboxed_content(
    frame: av.VideoFrame, box: Letterbox, *, rotation: int, scaler: RgbScaler | None = None
) -> np.ndarray:
    """uint8 [Hn, Wn, 3] RGB content rectangle of the letterboxed frame (display orientation).

    Scaled by swscale with area averaging (anti-aliased, `RgbScaler`; upstream used OpenCV bilinear on BGR, spec 5),
    then turned by the display rotation (counter-clockwise degrees).
    """
    rotated = rotation in (90, 270)
    h, w = (box.Wn, box.Hn) if rotated else (box.Hn, box.Wn)
    rgb = rgb_resized(frame, height=h, width=w, scaler=scaler)
    if rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, rotation // 90))
    return rgb


def read_letterboxed_frames(
    video_path: str | Path, frame_ids: np.ndarray, *, square_size: int = 576
) -> tuple[np.ndarray, np.ndarray]:
    """Decode only the pixels of `frame_ids` (one pass, stops after the last one), letterboxed as in spec 5.

    Returns:
        `(frames, frame_of_t)`: uint8 [F, S, S, 3] canvases of the distinct frames and int64 [T] row per t.
        A frame that cannot be decoded shows the nearest decoded one (logged).
    """
    frame_ids = np.asarray(frame_ids, dtype=np.int64)
    distinct = sorted(set(frame_ids.tolist()))
    row = {idx: n for n, idx in enumerate(distinct)}
    frames = np.zeros((len(distinct), square_size, square_size, 3), dtype=np.uint8)
    scaler = RgbScaler()
    done: set[int] = set()
    box = None
    rotation = 0
    # Frames are indexed by display position as select_patches indexes them (probe_video's packets), so that the
    # pixels match a stored selection even where frames cannot be decoded (a stream cut before a keyframe).
    info = probe_video(video_path)
    frames_in = iter_indexed_frames(
        video_path,
        export_mvs=False,
        keep=frozenset(distinct),
        display_pts=info.display_pts,
        stream_index=info.stream_index,
    )
    first_size = None
    for index, frame in frames_in:
        if box is None:
            rotation = frame_rotation(frame)
            h0, w0 = (frame.width, frame.height) if rotation in (90, 270) else (frame.height, frame.width)
            box = letterbox(h0, w0, out_size=square_size)
            first_size = (frame.height, frame.width)
        if index in row and index not in done:
            if (frame.height, frame.width) != first_size:  # a size change mid-stream: as select_patches reads it
                frame = same_size_frame(frame, height=first_size[0], width=first_size[1])
            content = letterboxed_content(frame, box, rotation=rotation, scaler=scaler)
            frames[row[index], box.pad_top : box.pad_top + box.Hn, box.pad_left : box.pad_left + box.Wn] = content
            done.add(index)
        if index >= distinct[-1]:
            break
    missing = [i for i in distinct if i not in done]
    if missing:
        logger.warning(
            "%s: frames %s could not be decoded; each shows the nearest decoded sampled frame", video_path, missing[:8]
        )
        decoded = sorted(done)
        for i in missing:
            stand_in = nearest_decoded(decoded, i)
            if stand_in is not None:
                frames[row[i]] = frames[row[stand_in]]
    frame_of_t = np.array([row[i] for i in frame_ids.tolist()], dtype=np.int64)
    return frames, frame_of_t
