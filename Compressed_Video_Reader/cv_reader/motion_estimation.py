"""Pixel-domain motion estimation by block matching, for frames without codec motion vectors (spec 11: HEVC, VP9,
AV1 export none; I-frames carry none, including the first frame after a scene cut)."""

from __future__ import annotations

import numpy as np

from .residual import box_downsample

ME_LONG_SIDE = 192  # match on luma downscaled to about this long side: cheap, and +-search covers fast motion


def estimate_motion(
    cur: np.ndarray, ref: np.ndarray, *, block: int = 4, search: int = 5, zero_bias: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Full-search block matching of `cur` against `ref` (same-size float luma [H, W]).

    Args:
        block: block size in input pixels.
        search: search range in input pixels (every shift in [-search, search]^2 is tried).
        zero_bias: SAD discount (grey levels per pixel) for the zero vector, so flat areas stay at rest instead of
            taking a random vector (the "blocky false positives in flat areas" of spec 13.3).

    Returns:
        `(motion, residual)`: float32 [H//block, W//block, 2] motion (dx, dy) in input pixels, pointing from `cur`
        to the matched position in `ref`; float32 [H//block, W//block] mean absolute error of the best match
        (a motion-compensated residual per block, grey levels).
    """
    hb, wb = cur.shape[0] // block, cur.shape[1] // block
    cur = cur[: hb * block, : wb * block]
    padded = np.pad(ref, ((search, search + block), (search, search + block)), mode="edge")
    best = np.full((hb, wb), np.inf, dtype=np.float32)
    motion = np.zeros((hb, wb, 2), dtype=np.float32)
    # Visit shifts by increasing length so that equal costs keep the shortest vector.
    shifts = sorted(
        ((dy, dx) for dy in range(-search, search + 1) for dx in range(-search, search + 1)),
        key=lambda shift: (shift[0] ** 2 + shift[1] ** 2, shift),
    )
    for dy, dx in shifts:
        shifted = padded[search + dy : search + dy + hb * block, search + dx : search + dx + wb * block]
        sad = np.abs(cur - shifted).reshape(hb, block, wb, block).mean(axis=(1, 3))
        if dy == 0 and dx == 0:
            sad = sad - zero_bias
        better = sad < best
        best = np.where(better, sad, best)
        motion[better] = (dx, dy)
    residual = np.maximum(best, 0.0)
    return motion, residual


def frame_motion(cur_full: np.ndarray, ref_full: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Block motion between two luma planes [H, W] (uint8 or float, any common resolution).

    The matching downscale brings the long side to about `ME_LONG_SIDE` but keeps at least two 4-px blocks across
    the short side (a 4096x64 frame downscaled by its long side alone would be 2 px high: no block at all); frames
    smaller than one block match with a single block of their own size.

    Returns:
        `(motion, residual, step)`: motion float32 [h, w, 2] in input pixels (multiples of the matching downscale),
        residual float32 [h, w] (grey levels), and `step` = input pixels per output cell.
    """
    short = min(cur_full.shape)
    factor = max(1, min(int(np.ceil(max(cur_full.shape) / ME_LONG_SIDE)), short // 8))
    cur = box_downsample(cur_full, factor)
    ref = box_downsample(ref_full, factor)
    block = max(1, min(4, *cur.shape))
    motion, residual = estimate_motion(cur, ref, block=block, search=max(1, min(5, 2 * block)))
    return motion * factor, residual, block * factor
