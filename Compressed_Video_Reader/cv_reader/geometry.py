"""Letterbox geometry of the square canvas and linear maps from a frame-sized energy map to canvas cell sums.

Spec section 5: `scale = S / max(H0, W0)`, Python `round` (banker's) for the content size, padding split with the
remainder at the bottom/right, and a cell is "content" only if it lies fully inside the content rectangle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """Where a H0 x W0 frame lands on the `out_size` square canvas (all values in pixels)."""

    H0: int
    W0: int
    out_size: int
    scale: float
    Hn: int
    Wn: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int

    def to_dict(self) -> dict:
        """The upstream `pad_info` dict (spec section 7)."""
        d = asdict(self)
        return {
            k: d[k]
            for k in ("scale", "Hn", "Wn", "pad_top", "pad_left", "pad_bottom", "pad_right", "out_size", "H0", "W0")
        }


def letterbox(height: int, width: int, *, out_size: int) -> Letterbox:
    """Letterbox geometry of a `height` x `width` frame on an `out_size` square (spec section 5)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    scale = out_size / max(height, width)
    hn = max(1, round(height * scale))
    wn = max(1, round(width * scale))
    pad_top = (out_size - hn) // 2
    pad_left = (out_size - wn) // 2
    return Letterbox(
        H0=height,
        W0=width,
        out_size=out_size,
        scale=scale,
        Hn=hn,
        Wn=wn,
        pad_top=pad_top,
        pad_left=pad_left,
        pad_bottom=out_size - hn - pad_top,
        pad_right=out_size - wn - pad_left,
    )


def oriented(array: np.ndarray, turns: int, *, mirror: bool = False, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """A view of `array` turned counter-clockwise by `turns` quarter turns in the plane of `axes` (`np.rot90`), then
    flipped left to right (its `axes[1]` reversed) if `mirror`: the display orientation of a picture or map whose
    display matrix says so (`decode.frame_orientation`)."""
    if turns % 4:
        array = np.rot90(array, turns, axes=axes)
    return np.flip(array, axis=axes[1]) if mirror else array


def valid_cell_ranges(box: Letterbox, patch_size: int) -> tuple[int, int, int, int]:
    """Cells fully inside the content rectangle: `(h_start, h_end, w_start, w_end)`, end exclusive (spec 5)."""
    h_start = -(-box.pad_top // patch_size)
    h_end = (box.pad_top + box.Hn) // patch_size
    w_start = -(-box.pad_left // patch_size)
    w_end = (box.pad_left + box.Wn) // patch_size
    return h_start, max(h_start, h_end), w_start, max(w_start, w_end)


def valid_cell_mask(box: Letterbox, patch_size: int) -> np.ndarray:
    """Boolean [grid, grid] mask of content cells (True) vs padding cells (False)."""
    grid = box.out_size // patch_size
    h0, h1, w0, w1 = valid_cell_ranges(box, patch_size)
    mask = np.zeros((grid, grid), dtype=bool)
    mask[h0:h1, w0:w1] = True
    return mask


def _area_cell_matrix(n_src: int, src_step: float, *, offset: float, grid: int, patch_size: int) -> np.ndarray:
    """[grid, n_src] overlap lengths (canvas px) between canvas cells and source samples.

    Source sample i covers canvas `[offset + i*src_step, offset + (i+1)*src_step)`; cell r covers
    `[r*patch, (r+1)*patch)`. Summing F over a cell with these weights integrates the area-resampled map, the
    anti-aliased filter spec section 5 recommends for large downscales.
    """
    lo = offset + np.arange(n_src) * src_step
    hi = lo + src_step
    cell_lo = np.arange(grid)[:, None] * patch_size
    cell_hi = cell_lo + patch_size
    return np.clip(np.minimum(hi[None, :], cell_hi) - np.maximum(lo[None, :], cell_lo), 0.0, None)


def _clip_to_content(mat: np.ndarray, span: tuple[int, int], *, patch_size: int) -> np.ndarray:
    """Scale each cell row so it never integrates more than its overlap with the content span `[lo, hi)`."""
    lo, hi = span
    cell_lo = np.arange(mat.shape[0]) * patch_size
    overlap = np.clip(np.minimum(cell_lo + patch_size, hi) - np.maximum(cell_lo, lo), 0, None)
    total = mat.sum(axis=1)
    factor = np.where(total > overlap, overlap / np.maximum(total, 1e-12), 1.0)
    return mat * factor[:, None]


def _bilinear_matrix(n_src: int, n_dst: int) -> np.ndarray:
    """[n_dst, n_src] weights of OpenCV INTER_LINEAR (half-pixel centres, clamped, 2 taps, no antialias)."""
    step = n_src / n_dst
    pos = (np.arange(n_dst) + 0.5) * step - 0.5
    pos = np.clip(pos, 0.0, None)
    i0 = np.minimum(np.floor(pos).astype(np.int64), n_src - 1)
    frac = pos - i0
    i1 = np.minimum(i0 + 1, n_src - 1)
    frac = np.where(i0 == n_src - 1, 0.0, frac)
    mat = np.zeros((n_dst, n_src))
    np.add.at(mat, (np.arange(n_dst), i0), 1.0 - frac)
    np.add.at(mat, (np.arange(n_dst), i1), frac)
    return mat


def _bilinear_cell_matrix(n_src: int, n_content: int, *, pad: int, grid: int, patch_size: int) -> np.ndarray:
    """[grid, n_src]: bilinear resize to `n_content` canvas px at offset `pad`, then 16-px cell sums."""
    resize = _bilinear_matrix(n_src, n_content)
    rows = pad + np.arange(n_content)
    cells = np.zeros((grid, n_content))
    inside = rows < grid * patch_size
    cells[rows[inside] // patch_size, np.arange(n_content)[inside]] = 1.0
    return cells @ resize


def cell_sum_matrices(
    box: Letterbox,
    src_shape: tuple[int, int],
    *,
    step_px: float,
    patch_size: int,
    mode: str = "area",
    origin: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Matrices `(A_h [grid, src_height], A_w [grid, src_width])` with `cells = A_h @ F @ A_w.T`.

    `F` is an energy map in [0, 1] (display orientation) whose sample (i, j) covers the frame pixels
    `[y0 + i*step_px, y0 + (i+1)*step_px) x [x0 + j*step_px, x0 + (j+1)*step_px)` of the H0 x W0 frame, `(y0, x0)` =
    `origin` (0 unless the map was turned or flipped from a block grid that does not end at the frame's edge: its
    first sample is then the grid's last). `cells[h, w]` is the sum of the letterboxed map over canvas cell (h, w),
    in canvas pixels (0..patch_size**2), as upstream's `score` (spec 6).

    Args:
        mode: "area" (exact area integration, default) or "bilinear" (OpenCV INTER_LINEAR resize then cell sums:
            upstream parity, spec section 5; `origin` is not used).
    """
    grid = box.out_size // patch_size
    src_height, src_width = src_shape
    if mode == "area":
        # Samples past the frame edge (block grids that overhang odd sizes) are clipped to the content rectangle.
        scale_h, scale_w = box.Hn / box.H0, box.Wn / box.W0
        a_h = _area_cell_matrix(
            src_height, step_px * scale_h, offset=box.pad_top + origin[0] * scale_h, grid=grid, patch_size=patch_size
        )
        a_w = _area_cell_matrix(
            src_width, step_px * scale_w, offset=box.pad_left + origin[1] * scale_w, grid=grid, patch_size=patch_size
        )
        a_h = _clip_to_content(a_h, (box.pad_top, box.pad_top + box.Hn), patch_size=patch_size)
        a_w = _clip_to_content(a_w, (box.pad_left, box.pad_left + box.Wn), patch_size=patch_size)
    elif mode == "bilinear":
        a_h = _bilinear_cell_matrix(src_height, box.Hn, pad=box.pad_top, grid=grid, patch_size=patch_size)
        a_w = _bilinear_cell_matrix(src_width, box.Wn, pad=box.pad_left, grid=grid, patch_size=patch_size)
    else:
        raise ValueError(f"resize mode must be 'area' or 'bilinear', got {mode!r}")
    return a_h.astype(np.float32), a_w.astype(np.float32)
