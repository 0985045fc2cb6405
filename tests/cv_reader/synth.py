"""Synthetic videos with known moving masks, encoded with PyAV (CPU, no network, a few hundred ms each)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass
class SynthVideo:
    """A written clip and its ground truth: `masks[i]` bool [H, W] is True where frame i moves (display order)."""

    path: Path
    masks: np.ndarray
    height: int
    width: int


def smooth_texture(rng: np.random.Generator, *, height: int, width: int, scale: int = 8) -> np.ndarray:
    """uint8 [H, W, 3] band-limited random texture (natural-image-like: codecs predict it well, not noise)."""
    small = rng.uniform(0, 255, size=(height // scale + 2, width // scale + 2, 3)).astype(np.float32)
    big = np.repeat(np.repeat(small, scale, axis=0), scale, axis=1)
    k = np.ones(scale, np.float32) / scale  # box blur twice ~ smooth bilinear-like texture
    for axis in (0, 1):
        for _ in range(2):
            big = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), axis, big)
    return np.clip(big[:height, :width], 0, 255).astype(np.uint8)


def write_video(
    path: Path,
    frames: list[np.ndarray],
    *,
    codec: str = "libx264",
    fps: int = 30,
    bframes: int = 2,
    gop: int = 32,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    options: dict | None = None,
) -> Path:
    """Encode RGB frames [H, W, 3] with PyAV. `pts` (in `time_base`) makes variable frame rate clips."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = frames[0].shape[1]
        stream.height = frames[0].shape[0]
        stream.pix_fmt = pix_fmt
        # One thread: an encoder's output depends on its thread count (x264's threads, the slices of FFmpeg's own
        # encoders), so that every machine makes the same bitstream.
        stream.thread_count = 1
        opts = {}
        if codec == "libx264":
            opts = {
                "preset": "veryfast",
                "crf": "20",
                "x264-params": f"bframes={bframes}:keyint={gop}:scenecut=40",
            }
        elif codec == "libx265":
            opts = {"preset": "ultrafast", "x265-params": f"bframes={bframes}:keyint={gop}:log-level=error"}
        opts.update(options or {})
        stream.options = opts
        if codec == "mpeg4":
            stream.codec_context.gop_size = gop
            stream.codec_context.bit_rate = 2_000_000
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving_object_clip(
    path: Path,
    *,
    num_frames: int = 96,
    height: int = 144,
    width: int = 256,
    obj: int = 24,
    speed: float = 3.0,
    pan: float = 0.0,
    cut_at: int | None = None,
    flat_background: bool = False,
    still_from: int | None = None,
    seed: int = 0,
    **write_kwargs,
) -> SynthVideo:
    """Static (or panning) textured background with one textured square moving on a bouncing path.

    Args:
        obj: object side in pixels; speed: pixels per frame; pan: camera pan in pixels per frame (background moves,
        the object keeps its own path on screen); cut_at: frame of a scene cut (new background, new object path);
        flat_background: near-uniform background (where codec vectors are arbitrary); still_from: the object stops
        moving from this frame on (mask empty afterwards).
    """
    rng = np.random.default_rng(seed)
    margin = int(abs(pan) * num_frames) + 8
    scenes = []
    for _ in range(2):
        if flat_background:
            bg = np.full((height, width + margin, 3), 96, np.uint8)
            bg = np.clip(bg + rng.normal(0, 1.0, bg.shape), 0, 255).astype(np.uint8)
        else:
            bg = smooth_texture(rng, height=height, width=width + margin, scale=8)
        tex = smooth_texture(rng, height=obj, width=obj, scale=4)
        tex[::6] = 255 - tex[::6]  # stripes: a distinctive object that the encoder tracks
        start = rng.uniform([0, 0], [height - obj, width - obj])
        direction = rng.normal(size=2)
        direction /= np.linalg.norm(direction)
        scenes.append((bg, tex, start, direction))
    frames, masks = [], []
    for i in range(num_frames):
        scene = 1 if cut_at is not None and i >= cut_at else 0
        bg, tex, start, direction = scenes[scene]
        local = i - (cut_at if scene else 0)
        offset = int(round(pan * i)) if pan else 0
        frame = bg[:, offset : offset + width].copy()
        moving_steps = local if still_from is None else min(local, still_from)
        y, x = _bounce(start + direction * speed * moving_steps, max_y=height - obj, max_x=width - obj)
        frame[y : y + obj, x : x + obj] = tex
        mask = np.zeros((height, width), bool)
        if still_from is None or local < still_from:
            mask[y : y + obj, x : x + obj] = True
        frames.append(frame)
        masks.append(mask)
    write_video(path, frames, **write_kwargs)
    return SynthVideo(path=path, masks=np.stack(masks), height=height, width=width)


def _bounce(pos: np.ndarray, *, max_y: int, max_x: int) -> tuple[int, int]:
    """Reflect a straight path inside [0, max_y] x [0, max_x] (integer pixels)."""
    out = []
    for v, hi in zip(pos, (max_y, max_x), strict=True):
        period = 2 * hi
        v = abs(v) % period
        out.append(int(round(period - v if v > hi else v)))
    return out[0], out[1]


def moving_cells(
    masks: np.ndarray, frame_ids: np.ndarray, *, square_size: int = 576, patch_size: int = 16, min_cover: float = 0.25
) -> np.ndarray:
    """bool [T, G, G]: canvas cells covered at least `min_cover` by the moving mask of each sampled frame."""
    from cv_reader.geometry import letterbox

    _, h0, w0 = masks.shape
    box = letterbox(h0, w0, out_size=square_size)
    grid = square_size // patch_size
    out = np.zeros((len(frame_ids), grid, grid), bool)
    ys = ((np.arange(square_size) - box.pad_top + 0.5) / box.scale).astype(int)
    xs = ((np.arange(square_size) - box.pad_left + 0.5) / box.scale).astype(int)
    inside_y = (np.arange(square_size) >= box.pad_top) & (np.arange(square_size) < box.pad_top + box.Hn)
    inside_x = (np.arange(square_size) >= box.pad_left) & (np.arange(square_size) < box.pad_left + box.Wn)
    ys = np.clip(ys, 0, h0 - 1)
    xs = np.clip(xs, 0, w0 - 1)
    for t, idx in enumerate(frame_ids):
        canvas = masks[idx][ys][:, xs] & inside_y[:, None] & inside_x[None, :]
        cover = canvas.reshape(grid, patch_size, grid, patch_size).mean(axis=(1, 3))
        out[t] = cover >= min_cover
    return out


def recall(
    visidx_thw: np.ndarray, truth: np.ndarray, *, frame_ids: np.ndarray | None = None, from_t: int = 1
) -> float:
    """Share of the true moving cells with t >= from_t that the selection kept (1.0 if there are none).

    With `frame_ids`, slots repeating the previous frame (clips shorter than T) are not counted: a repeated frame
    holds no new information and the selection ranks it last on purpose.
    """
    kept = np.zeros_like(truth)
    kept[visidx_thw[:, 0], visidx_thw[:, 1], visidx_thw[:, 2]] = True
    use = np.ones(truth.shape[0], bool)
    use[:from_t] = False
    if frame_ids is not None:
        use[1:] &= np.asarray(frame_ids)[1:] != np.asarray(frame_ids)[:-1]
    want = truth[use]
    total = int(want.sum())
    return 1.0 if total == 0 else float((kept[use] & want).sum() / total)
