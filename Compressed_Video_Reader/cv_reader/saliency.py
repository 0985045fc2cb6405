"""Per-frame energy: normalised motion and residual maps fused into 16x16 cell scores (spec 4, 5, 6).

The fusion `0.5*Mn + 0.5*Rn` is linear and both terms lie in [0, 1], so the cell sums of each term are computed on
its own grid with exact area-integration matrices and added: identical to nearest-upsampling both maps to the frame,
fusing, letterboxing with an area filter and summing 16x16 cells, at a fraction of the cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import kernels
from .geometry import Letterbox, cell_sum_matrices, oriented


@dataclass(frozen=True)
class EnergyConfig:
    """Knobs of the energy recipe; defaults are the package's "clean" recipe.

    Attributes:
        mv_pct, res_pct: per-frame percentile used as the normaliser (spec 4: 95).
        mv_floor: lower bound of the motion normaliser, pixels. Upstream: 1e-6 (then p95 = 0 turns Mn into a binary
            "any motion" mask and static frames get full weight, spec 13.3); 1.0 px keeps sub-pixel jitter low.
        res_floor: lower bound of the residual normaliser, grey levels. Upstream: 1.0; 3.0 stops per-frame p95
            normalisation from amplifying coding noise in static frames (spec 13.3).
        w_mv, w_res: fusion weights. Upstream 1, 1 (0.5/0.5); the proxy residual is not upstream's patched-decoder
            "residual" (spec 2.1), so it gets half the weight: demo agreement 0.79/0.67 at 1:1, 0.81/0.72 at 1:0.5.
        mv_compensate: "median" (spec 4: camera-motion compensation), "mean" or "none".
        resize: "area" (anti-aliased) or "bilinear" (OpenCV INTER_LINEAR parity) for the letterbox of the energy.
        l1_weight: list-1-only blocks (B-frames) get this fraction of their list-1 motion magnitude. Upstream: 0, which
            misses objects coded from the future; 0.3 recovers them on synthetic clips (recall at K=10368 0.98 -> 1.0)
            at a small cost in agreement with upstream (demo 0.83/0.73 -> 0.81/0.72).
        mv_floor_moving_camera: motion normaliser floor (pixels) in frames whose camera estimate is not zero.
        camera_modes: extra dominant vectors (>= 35 % of blocks) treated as camera motion, for vectors into
            different reference frames. Off by default: it lifts pan recall (synthetic 0.51 -> 0.64 at K=2592) but
            drops the demo agreement with upstream (YVQ 0.71 -> 0.54), which selects those blocks.
        mv_truncate: where integer truncation of the vectors happens, see `compensate_motion` (upstream: before).
        median_over_coded: take the camera-motion median over coded blocks only (upstream: whole grid, intra = 0).
        intra_frame_motion: frames without motion vectors (I-frames, intra-coded scene cuts) take block-matching
            motion and residual against the next frame; False = upstream (zero motion, texture residual only).
        intra_residual: residual of intra blocks in inter frames: "difference" (to the previous anchor) or
            "highpass" (spec 11 texture proxy).
    """

    mv_pct: float = 95.0
    res_pct: float = 95.0
    mv_floor: float = 1.0
    res_floor: float = 3.0
    w_mv: float = 1.0
    w_res: float = 0.5
    mv_compensate: str = "median"
    resize: str = "area"
    l1_weight: float = 0.3
    mv_truncate: str = "before"
    mv_floor_moving_camera: float = 2.0
    camera_modes: int = 0
    median_over_coded: bool = False
    intra_residual: str = "difference"
    intra_frame_motion: bool = True

    @classmethod
    def upstream(cls) -> EnergyConfig:
        """The upstream recipe as far as stock FFmpeg allows (spec 4): 0.5/0.5, floors 1e-6 px-equivalent and 1.0,
        list 0 only, bilinear letterbox, high-pass proxy for intra blocks."""
        return cls(
            mv_floor=4e-6,
            res_floor=1.0,
            w_mv=1.0,
            w_res=1.0,
            l1_weight=0.0,
            resize="bilinear",
            intra_residual="highpass",
            mv_truncate="before",
            mv_floor_moving_camera=0.0,
            intra_frame_motion=False,
        )


def compensate_motion(
    motion: np.ndarray,
    valid: np.ndarray,
    *,
    mode: str,
    truncate: str = "none",
    extra_modes: int = 0,
    mode_share: float = 0.35,
) -> np.ndarray:
    """Magnitude [B, h, w] of `motion` [B, h, w, 2] (pixels, a batch of frames) after removing each frame's global
    (camera) motion.

    Args:
        valid: bool [B, h, w], blocks that enter the camera estimate; blocks outside get magnitude 0.
        mode: "median" (spec 4), "mean" or "none".
        extra_modes, mode_share: up to `extra_modes` further vectors shared by at least `mode_share` of the valid
            blocks also count as camera motion (magnitude = distance to the nearest camera vector).
        truncate: "before" truncates vectors toward zero before the compensation (upstream: its reader exports
            integer `src - dst`, spec 2.3); "after" truncates the compensated vectors, a < 1 px dead zone relative
            to the camera (under a pan, integer vectors disagree by +-1 px and light up the whole background);
            "none" keeps sub-pixel magnitudes.
    """
    if mode not in ("median", "mean", "none"):
        raise ValueError(f"mv_compensate must be median, mean or none, got {mode!r}")
    if truncate not in ("before", "after", "none"):
        raise ValueError(f"mv_truncate must be before, after or none, got {truncate!r}")
    count = motion.shape[0]
    vx, vy = motion[..., 0], motion[..., 1]
    if truncate == "before":
        vx, vy = np.trunc(vx), np.trunc(vy)
    if mode != "none":
        reduce = median if mode == "median" else np.mean
        if valid.all():  # the whole grid of every frame: one call for the batch
            camera_x = reduce(vx.reshape(count, -1), axis=1)[:, None, None]
            camera_y = reduce(vy.reshape(count, -1), axis=1)[:, None, None]
        elif mode == "median":
            camera_x, camera_y = _masked_median(vx, valid), _masked_median(vy, valid)
        else:
            camera_x = np.zeros((count, 1, 1), vx.dtype)
            camera_y = np.zeros((count, 1, 1), vy.dtype)
            for n in np.flatnonzero(valid.reshape(count, -1).any(axis=1)).tolist():
                camera_x[n] = reduce(vx[n][valid[n]])
                camera_y[n] = reduce(vy[n][valid[n]])
        vx, vy = vx - camera_x, vy - camera_y
    if truncate == "after":
        vx, vy = np.trunc(vx), np.trunc(vy)
    mag = np.sqrt(vx * vx + vy * vy)
    if extra_modes > 0:
        for n in range(count):
            mag[n] = _other_camera_modes(vx[n], vy[n], mag[n], valid[n], extra_modes=extra_modes, share=mode_share)
    return np.where(valid, mag, 0.0).astype(np.float32)


def median(values: np.ndarray, axis: int) -> np.ndarray:
    """`np.median(values, axis=axis)` of finite float data, the same values: the middle element, or the mean of the
    two middle ones in the data's float type. Written out because np.median's NaN check imports numpy.ma on its
    first call (20-40 ms, paid on the clock of a process's first video) and reads the data once more."""
    values = np.asarray(values)
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    size = values.shape[axis]
    half = size // 2
    picked = kernels.order_stats(values, half - 1 + size % 2, half) if axis in (1, -1) and size else None
    if picked is not None:  # compiled: the same middle values
        lower, upper = picked
        return upper if size % 2 else (lower + upper) / values.dtype.type(2)
    part = np.partition(values, half, axis=axis)
    if size % 2:
        return np.take(part, half, axis=axis)
    # The lower middle value is the largest of the `half` values before it: one partition around a single kth
    # (numpy's SIMD selection; given two kth it falls back to introselect, 4x slower on a 3600-block grid).
    lower = np.take(part, np.arange(half), axis=axis).max(axis=axis)
    return (lower + np.take(part, half, axis=axis)) / values.dtype.type(2)


def _masked_median(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float32 [B, 1, 1] median of each frame's `values` [B, h, w] where `valid`, 0 where none is: `np.median` of
    `values[n][valid[n]]` for all frames in one sort (invalid entries sort last as +inf)."""
    count = values.shape[0]
    rows = np.sort(np.where(valid, values, np.inf).reshape(count, -1), axis=1)
    sizes = np.count_nonzero(valid.reshape(count, -1), axis=1)
    low = np.take_along_axis(rows, np.maximum(sizes - 1, 0)[:, None] // 2, axis=1)[:, 0]
    high = np.take_along_axis(rows, (sizes // 2)[:, None], axis=1)[:, 0]
    # np.median: the middle element, or the float32 mean of the two middle ones.
    median = np.where(sizes % 2 == 1, low, (low + high) / np.float32(2)).astype(values.dtype)
    return np.where(sizes > 0, median, 0).astype(values.dtype)[:, None, None]


def _other_camera_modes(
    vx: np.ndarray, vy: np.ndarray, mag: np.ndarray, valid: np.ndarray, *, extra_modes: int, share: float
) -> np.ndarray:
    """Vectors into different reference frames (unknown: `source` is only a direction) give several "camera"
    vectors in one frame; a block matching any dominant vector is background."""
    if not valid.any():
        return mag
    keys = np.round(vx[valid]).astype(np.int64) * 65536 + np.round(vy[valid]).astype(np.int64)
    values, counts = np.unique(keys, return_counts=True)
    order = np.argsort(-counts)
    for idx in order[1 : 1 + extra_modes]:
        if counts[idx] < share * keys.size:
            break
        mx, my = divmod(int(values[idx]) + 32768, 65536)
        my -= 32768
        mag = np.minimum(mag, np.sqrt((vx - mx) ** 2 + (vy - my) ** 2))
    return mag


PERCENTILE_SAMPLES = 16384  # percentiles of larger maps are taken on a regular subsample (same value to ~1 %)


def percentile_rows(rows: np.ndarray, pct: float) -> np.ndarray:
    """`np.percentile(rows, pct, axis=1)` (linear method) of finite float rows [B, n], n >= 1, the same values
    computed the same way: the two order statistics around `(n - 1) * pct / 100`, interpolated as numpy does in the
    rows' float type. Written out because np.percentile's index bookkeeping imports numpy.ma on its first call
    (20-40 ms, paid on the clock of a process's first video) and checks every row for NaN."""
    size = rows.shape[1]
    virtual = (size - 1) * (float(pct) / 100)  # Python floats: a weak scalar keeps the rows' float type
    low = math.floor(virtual) if virtual < size - 1 else size - 1
    high = min(low + 1, size - 1)
    gamma = virtual - low if virtual < size - 1 else 0.0
    picked = kernels.order_stats(rows, low, high)
    if picked is not None:  # compiled: the same order statistics, in a time that does not depend on the data
        below, above = picked
    else:
        # One partition around the higher order statistic; the lower one, when it differs, is the largest value
        # before it (numpy's SIMD selection takes a single kth: given two it falls back to introselect, 4x slower on
        # 14k values).
        part = np.partition(rows, high, axis=1)
        above = part[:, high]
        below = part[:, :high].max(axis=1) if low < high else above
    step = above - below
    if gamma >= 0.5:  # numpy's lerp interpolates from the nearer end
        return above - step * (1 - gamma)
    return below + step * gamma


def normalise_batch(energy: np.ndarray, *, pct: float, floors: np.ndarray) -> np.ndarray:
    """`clip(x / max(percentile(x, pct), floor), 0, 1)` per frame of `energy` [B, ...] (spec 4, numpy linear
    percentile), `floors` [B]."""
    count = energy.shape[0]
    flat = energy.reshape(count, -1)
    if flat.shape[1] == 0:  # a frame too small for one block: nothing to normalise
        return np.zeros(energy.shape, np.float32)
    if flat.shape[1] > 2 * PERCENTILE_SAMPLES:
        flat = flat[:, :: flat.shape[1] // PERCENTILE_SAMPLES]
    # Compared in float64 and divided in float32, as `x / max(float(p), floor)` does for one float32 map.
    scale = np.maximum(percentile_rows(flat, pct).astype(np.float64), np.asarray(floors, np.float64))
    scale = scale.astype(energy.dtype if energy.dtype == np.float32 else np.float64)
    return np.clip(energy / scale.reshape((count,) + (1,) * (energy.ndim - 1)), 0.0, 1.0).astype(np.float32)


def normalise(energy: np.ndarray, *, pct: float, floor: float) -> np.ndarray:
    """`normalise_batch` of one map."""
    return normalise_batch(energy[None], pct=pct, floors=np.array([floor]))[0]


class _SparseRows:
    """A [G, n] matrix with a few non-zeros per column (each source sample overlaps one to three canvas cells),
    applied as gathers + `np.add.reduceat`: no BLAS call, so no BLAS thread pool competing with the decoder's
    threads (a 36x180 @ 180x320 float32 product took 0.05 ms alone but 1.7 ms inside the decode loop)."""

    def __init__(self, mat: np.ndarray) -> None:
        self.rows = mat.shape[0]
        cols, cells = np.nonzero(mat.T)  # pairs sorted by column, then cell
        first = np.r_[True, cols[1:] != cols[:-1]]
        slot = np.arange(cols.size) - np.maximum.accumulate(np.where(first, np.arange(cols.size), 0))
        self.slots = []
        for k in range(int(slot.max()) + 1 if slot.size else 0):
            in_slot = slot == k
            c, r = cols[in_slot], cells[in_slot]
            targets, starts = np.unique(r, return_index=True)  # r is non-decreasing in c
            self.slots.append((c, mat[r, c].astype(np.float32)[:, None], starts, targets))
        # The same segments flattened in the order they are applied, for the compiled loop (`kernels.sparse_rows`).
        offsets = np.cumsum([0] + [len(c) for c, *_ in self.slots])
        self.flat = (
            np.concatenate([c for c, *_ in self.slots] or [np.zeros(0)]).astype(np.int32),
            np.concatenate([w[:, 0] for _, w, *_ in self.slots] or [np.zeros(0)]).astype(np.float32),
            np.concatenate(
                [st + off for (_, _, st, _), off in zip(self.slots, offsets, strict=False)] + [offsets[-1:]]
            ).astype(np.int32),
            np.concatenate([t for *_, t in self.slots] or [np.zeros(0)]).astype(np.int32),
        )

    def left_multiply(self, values: np.ndarray) -> np.ndarray:
        """`mat @ values` for values [n, m] -> [G, m] (float32)."""
        out = np.zeros((self.rows, values.shape[1]), dtype=np.float32)
        if kernels.sparse_rows(values, *self.flat, out=out):
            return out
        for cols, weights, starts, targets in self.slots:
            out[targets] += np.add.reduceat(values[cols] * weights, starts, axis=0)
        return out


@lru_cache(maxsize=64)
def _matrices(
    box: Letterbox, shape: tuple[int, int], *, step_px: float, patch_size: int, mode: str, origin: tuple[float, float]
) -> tuple[_SparseRows, _SparseRows]:
    a_h, a_w = cell_sum_matrices(box, shape, step_px=step_px, patch_size=patch_size, mode=mode, origin=origin)
    return _SparseRows(a_h), _SparseRows(a_w)


def rotate_map(energy: np.ndarray, rotation: int, mirror: bool = False) -> np.ndarray:
    """Turn coded-orientation maps [B, h, w] into display orientation (`rotation` = counter-clockwise degrees, then
    a left-right flip if `mirror`: `decode.frame_orientation`)."""
    return np.ascontiguousarray(oriented(energy, (rotation // 90) % 4, mirror=mirror, axes=(1, 2)))


def cell_scores(
    energy: np.ndarray,
    step_px: float,
    *,
    box: Letterbox,
    patch_size: int,
    mode: str = "area",
    rotation: int = 0,
    mirror: bool = False,
) -> np.ndarray:
    """float32 [B, G, G] sums of each letterboxed `energy` map over each canvas cell (canvas-pixel units).

    Args:
        energy: [B, h, w] maps in [0, 1], coded orientation, one sample per `step_px` x `step_px` frame pixels.
        rotation, mirror: display orientation (`decode.frame_orientation`), applied before the letterbox.
    """
    energy = rotate_map(energy, rotation, mirror).astype(np.float32, copy=False)
    count, height, width = energy.shape
    # An axis the turn or flip reversed starts with the grid's last sample, which ends where the grid ends: short of
    # the frame's edge (block matching's whole blocks) or past it (a macroblock grid over an odd size). It is placed
    # there, not at the corner (up to a block off: a cell at 1080p).
    k = (rotation // 90) % 4
    origin = (
        float(box.H0 - height * step_px) if k in (1, 2) else 0.0,
        float(box.W0 - width * step_px) if (k in (2, 3)) != mirror else 0.0,
    )
    a_h, a_w = _matrices(box, (height, width), step_px=float(step_px), patch_size=patch_size, mode=mode, origin=origin)
    # The batch rides along the columns of each product: column sums are independent, so every frame's cells are
    # the same numbers as alone.
    rows = a_h.left_multiply(energy.transpose(1, 0, 2).reshape(height, count * width))  # [G, B*w]
    grid = rows.shape[0]
    rows = rows.reshape(grid, count, width).transpose(2, 1, 0).reshape(width, count * grid)  # [w, B*G_h]
    cells = a_w.left_multiply(rows)  # [G_w, B*G_h]
    return np.ascontiguousarray(cells.reshape(grid, count, grid).transpose(1, 2, 0))


def fuse_cells(motion_cells: np.ndarray, residual_cells: np.ndarray, *, cfg: EnergyConfig) -> np.ndarray:
    """Weighted fusion of the motion and residual cell sums (spec 4 `weighted`; linear, so it commutes with sums)."""
    return ((cfg.w_mv * motion_cells + cfg.w_res * residual_cells) / (cfg.w_mv + cfg.w_res)).astype(np.float32)
