"""Pixel-domain motion estimation by block matching, for frames without codec motion vectors (spec 11: HEVC, VP9,
AV1 export none; I-frames carry none, including the first frame after a scene cut)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import kernels
from .residual import box_downsample, box_sums

ME_LONG_SIDE = 192  # match on luma downscaled to about this long side: cheap, and +-search covers fast motion


def estimate_motion(
    cur: np.ndarray, ref: np.ndarray, *, block: int = 4, search: int = 5, zero_bias: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Full-search block matching of `cur` against `ref` (same-size float luma [H, W], or [B, H, W] for a batch).

    Args:
        block: block size in input pixels.
        search: search range in input pixels (every shift in [-search, search]^2 is tried).
        zero_bias: SAD discount (grey levels per pixel) for the zero vector, so flat areas stay at rest instead of
            taking a random vector (the "blocky false positives in flat areas" of spec 13.3).

    Returns:
        `(motion, residual)`: float32 [(B,) H//block, W//block, 2] motion (dx, dy) in input pixels, pointing from
        `cur` to the matched position in `ref`; float32 [(B,) H//block, W//block] mean absolute error of the best
        match (a motion-compensated residual per block, grey levels).
    """
    if cur.ndim == 2:
        motion, residual = estimate_motion(cur[None], ref[None], block=block, search=search, zero_bias=zero_bias)
        return motion[0], residual[0]
    # Shifts by increasing length: the first minimum (argmin) is the shortest vector among equal costs.
    shifts = sorted(
        ((dy, dx) for dy in range(-search, search + 1) for dx in range(-search, search + 1)),
        key=lambda shift: (shift[0] ** 2 + shift[1] ** 2, shift),
    )
    compiled = kernels.block_match(cur, ref, block=block, search=search, zero_bias=zero_bias, shifts=np.array(shifts))
    if compiled is not None:
        return compiled
    count = cur.shape[0]
    hb, wb = cur.shape[1] // block, cur.shape[2] // block
    height, width = hb * block, wb * block
    cur = cur[:, :height, :width]
    padded = np.pad(ref, ((0, 0), (search, search + block), (search, search + block)), mode="edge")
    rank = {shift: n for n, shift in enumerate(shifts)}
    span = 2 * search + 1
    # All horizontal shifts of one row offset at once (a strided view, no copy): 2s+1 numpy passes instead of
    # (2s+1)^2 per frame.
    columns = np.moveaxis(sliding_window_view(padded, width, axis=2)[:, :, :span], 2, 0)  # [span, B, Hp, W]
    sad = np.empty((len(shifts), count, hb, wb), dtype=np.float32)
    diff = np.empty((span, count, height, width), dtype=np.float32)
    for dy in range(-search, search + 1):
        np.subtract(cur[None], columns[:, :, search + dy : search + dy + height], out=diff)
        np.abs(diff, out=diff)
        # Luma box-averaged by powers of two is dyadic, so these float32 block sums are exact in any order and
        # equal the reshape-mean of one block.
        sad[[rank[(dy, dx)] for dx in range(-search, search + 1)]] = box_sums(diff, block) / np.float32(block * block)
    sad[rank[(0, 0)]] -= zero_bias
    best = np.argmin(sad, axis=0)
    table = np.array([(dx, dy) for dy, dx in shifts], dtype=np.float32)
    residual = np.maximum(np.take_along_axis(sad, best[None], axis=0)[0], 0.0)
    return table[best], residual


def frame_motion(cur_full: np.ndarray, ref_full: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Block motion between two luma planes [H, W] (uint8 or float, any common resolution), or two batches of
    them [B, H, W].

    The matching downscale brings the long side to about `ME_LONG_SIDE` but keeps at least two 4-px blocks across
    the short side (a 4096x64 frame downscaled by its long side alone would be 2 px high: no block at all); frames
    smaller than one block match with a single block of their own size.

    Returns:
        `(motion, residual, step)`: motion float32 [(B,) h, w, 2] in input pixels (multiples of the matching
        downscale), residual float32 [(B,) h, w] (grey levels), and `step` = input pixels per output cell.
    """
    frame_shape = cur_full.shape[-2:]
    short = min(frame_shape)
    factor = max(1, min(int(np.ceil(max(frame_shape) / ME_LONG_SIDE)), short // 8))
    cur = box_downsample(cur_full, factor)
    ref = box_downsample(ref_full, factor)
    block = max(1, min(4, *cur.shape[-2:]))
    motion, residual = estimate_motion(cur, ref, block=block, search=max(1, min(5, 2 * block)))
    return motion * factor, residual, block * factor
