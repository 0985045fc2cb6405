"""The compiled inner loops (`_kernels.c`, built by setup.py) behind a Python face, with the numpy versions as the
fallback: every function here returns exactly what its numpy counterpart returns, compiled or not.

`CV_READER_KERNELS=0` in the environment (read at import) turns the compiled loops off, for comparisons;
`CV_READER_SIMD=0` keeps them but turns off their AVX2 code (taken where the CPU has AVX2: the motion-compensated
error, block matching and the work luma's block means), which gives the same numbers. A missing
build (no C compiler at install time) runs the numpy loops quietly; a stale one (another `VERSION`: the source
changed without a new `pip install -e .`) runs them too and says so once.
"""

from __future__ import annotations

import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

VERSION = 11  # must equal KERNELS_VERSION in _kernels.c

try:
    from . import _kernels
except ImportError:  # not built: no C compiler at install time, or a source checkout used without installing
    _kernels = None

if _kernels is not None and getattr(_kernels, "VERSION", None) != VERSION:
    logger.warning(
        "cv_reader._kernels is a stale build (version %s, expected %s): the slower numpy loops run until the"
        " package is installed again (pip install -e .)",
        getattr(_kernels, "VERSION", None),
        VERSION,
    )
    _kernels = None


# Read once: `compiled()` is asked for every frame, and an environment lookup costs more than the answer.
enabled = os.environ.get("CV_READER_KERNELS", "1") != "0"
if _kernels is not None and os.environ.get("CV_READER_SIMD", "1") == "0":
    _kernels.set_simd(False)


def compiled() -> bool:
    """Whether the compiled loops are used (built, current, and `enabled`: not turned off by `CV_READER_KERNELS=0`
    at import; tests and benchmarks may set `kernels.enabled` directly)."""
    return enabled and _kernels is not None


def box_mean(plane: np.ndarray, factor: int) -> np.ndarray | None:
    """float32 [H//f, W//f] block means of a uint8 or uint16 plane [H, W] (rows may be padded: a decoded frame's line
    size), as `residual.box_downsample`; None when the compiled loops are off."""
    if not compiled() or plane.ndim != 2 or plane.strides[1] != plane.itemsize:
        return None
    # (uint16 row sums hold 256 rows of 255; uint16 samples summed in uint32 stay exact in float32 up to 16 x 16)
    if not (plane.dtype == np.uint8 and factor <= 256) and not (plane.dtype == np.uint16 and factor <= 16):
        return None
    out = np.empty((plane.shape[0] // factor, plane.shape[1] // factor), dtype=np.float32)
    _kernels.box_mean(plane, factor, plane.dtype == np.uint16, out)
    return out


def mc_error(
    cur: np.ndarray,
    field: np.ndarray,
    *,
    has: np.ndarray,
    block: int,
    factor: int,
    prev: list[list[np.ndarray]],
    nxt: list[list[np.ndarray]],
    difference: bool,
) -> tuple[np.ndarray, bool] | None:
    """The motion-compensated error of `residual.mc_residual` (its arguments, on the work grid: `field`
    [B, hb, wb, 4], `has` [B, hb, wb, 2], `block` work pixels per vector): float32 [B, H, W], the smallest error over
    the candidate references of each direction whose block carries a vector; elsewhere, with `difference`, the
    difference to the frame's first list-0 candidate, else +inf. Returns `(error, any +inf left)`, or None when the
    compiled loops are off or the inputs are not float32."""
    if not compiled() or cur.dtype != np.float32 or field.shape[1] == 0 or field.shape[2] == 0:
        return None
    refs: list[np.ndarray] = []
    slot_of: dict[int, int] = {}  # one entry per distinct plane: a previous anchor is a candidate of many frames
    slots = max([len(r) for r in prev] + [len(r) for r in nxt] + [1])
    candidates = np.full((cur.shape[0], 2, slots), -1, dtype=np.int32)
    for direction, lists in enumerate((prev, nxt)):
        for n, planes in enumerate(lists):
            for k, plane in enumerate(planes):
                if plane.dtype != np.float32 or plane.shape != cur.shape[1:]:
                    return None
                if id(plane) not in slot_of:
                    slot_of[id(plane)] = len(refs)
                    refs.append(np.ascontiguousarray(plane))
                candidates[n, direction, k] = slot_of[id(plane)]
    back = candidates[:, 0, 0] if difference else np.full(cur.shape[0], -1, dtype=np.int32)
    out = np.empty(cur.shape, dtype=np.float32)
    left = _kernels.mc_error(
        np.ascontiguousarray(cur),
        np.ascontiguousarray(field, dtype=np.float32),
        np.ascontiguousarray(has).view(np.uint8),
        block,
        float(factor),
        refs,
        candidates,
        np.ascontiguousarray(back),
        out,
    )
    return out, left


def block_match(
    cur: np.ndarray, ref: np.ndarray, *, block: int, search: int, zero_bias: float, shifts: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """`motion_estimation.estimate_motion` of float32 batches `cur` [B, H, W] and `ref` [B, Hr, Wr] with the shifts
    int32 [S, 2] (dy, dx) in the order they are tried: `(motion [B, H//b, W//b, 2], residual [B, H//b, W//b])`, or
    None when the compiled loops are off or the inputs are not float32."""
    if not compiled() or cur.dtype != np.float32 or ref.dtype != np.float32 or block > 64:
        return None
    count, hb, wb = cur.shape[0], cur.shape[1] // block, cur.shape[2] // block
    motion = np.empty((count, hb, wb, 2), dtype=np.float32)
    residual = np.empty((count, hb, wb), dtype=np.float32)
    _kernels.block_match(
        np.ascontiguousarray(cur),
        np.ascontiguousarray(ref),
        block,
        search,
        zero_bias,
        np.ascontiguousarray(shifts, dtype=np.int32),
        motion,
        residual,
    )
    return motion, residual


# FFmpeg's AVMotionVector as PyAV's `to_ndarray` lays it out (40 bytes): the fields the compiled loops read, at their
# offsets (`_kernels.c` reads the records as bytes).
_MV_FIELDS = {
    "source": ("<i4", 0),
    "w": ("u1", 4),
    "h": ("u1", 5),
    "dst_x": ("<i2", 10),
    "dst_y": ("<i2", 12),
    "motion_x": ("<i4", 24),
    "motion_y": ("<i4", 28),
    "motion_scale": ("<u2", 32),
}
_MV_LAYOUTS: set[np.dtype] = set()  # record dtypes checked to have that layout


def _record_bytes(records: list[np.ndarray | None]) -> list[np.ndarray] | None:
    """Each frame's records as contiguous bytes (an empty array for None), or None when a dtype has another layout
    (records built by hand) or the compiled loops are off."""
    if not compiled():
        return None
    out = []
    for frame in records:
        if frame is None or not len(frame):
            out.append(np.zeros(0, np.uint8))
            continue
        dtype = frame.dtype
        if dtype not in _MV_LAYOUTS:
            fields = dtype.fields or {}
            if dtype.itemsize != 40 or any(
                name not in fields or fields[name][0] != np.dtype(kind) or fields[name][1] != offset
                for name, (kind, offset) in _MV_FIELDS.items()
            ):
                return None
            _MV_LAYOUTS.add(dtype)
        out.append(np.ascontiguousarray(frame).view(np.uint8))
    return out


def motion_fields(
    records: list[np.ndarray | None], *, rows: int, cols: int, block: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """`motion_vectors.motion_fields` straight from each frame's `AVMotionVector` records: `(field [B, rows, cols,
    4], has [B, rows, cols, 2])`, or None when the compiled loops are off, the records have another layout, or two
    records of one frame and direction overlap (the numpy version then decides the order of writes)."""
    frames = _record_bytes(records)
    if frames is None:
        return None
    field = np.zeros((len(records), rows, cols, 4), dtype=np.float32)
    has = np.zeros((len(records), rows, cols, 2), dtype=bool)
    return (field, has) if _kernels.mv_fields(frames, field, has.view(np.uint8), block) else None


def field_blocks(records: list[np.ndarray | None]) -> list[int] | None:
    """`motion_vectors.field_blocks` (8 or 4 per frame), or None when the compiled loops are off or the records have
    another layout."""
    frames = _record_bytes(records)
    return None if frames is None else list(_kernels.mv_blocks(frames))


def macroblock_cover(records: np.ndarray, *, mb_rows: int, mb_cols: int) -> tuple[int, bool] | None:
    """`(macroblocks, later)` of one frame's records (`pipeline.frame_kind`): how many of the mb_rows x mb_cols
    16x16 macroblocks hold a record's centre, and whether a record is predicted from a later frame; None when the
    compiled loops are off or the records have another layout."""
    frames = _record_bytes([records])
    return None if frames is None else _kernels.mv_cover(frames[0], mb_rows, mb_cols)


def sparse_rows(
    values: np.ndarray,
    cols: np.ndarray,
    weights: np.ndarray,
    bounds: np.ndarray,
    targets: np.ndarray,
    *,
    out: np.ndarray,
) -> bool:
    """Add to `out` [G, m] the sparse product of `saliency._SparseRows` (its segments flattened: `cols`, `weights`,
    `bounds` [S + 1], `targets` [S]) with `values` [n, m], in numpy's order of float32 roundings. False (and `out`
    untouched) when the compiled loops are off."""
    if not compiled():
        return False
    _kernels.sparse_rows(np.ascontiguousarray(values, dtype=np.float32), cols, weights, bounds, targets, out)
    return True


def pack_cells(
    frames: list[np.ndarray],
    frame_of: np.ndarray,
    *,
    cell_rows: np.ndarray,
    cell_cols: np.ndarray,
    patch_size: int,
    pad_top: int,
    pad_left: int,
    mosaics: np.ndarray,
    slots: np.ndarray,
    extra: tuple[int, int] = (0, 0),
) -> bool:
    """The copies of `packing.pack_cells` into `mosaics` [N, S, S, C] (rows may be padded: the planes of a frame
    buffer): kept cell r, canvas cell (`cell_rows[r]`, `cell_cols[r]`) of `frames[frame_of[r]]` (uint8 [Hn, Wn, C]
    content placed at the pads: RGB, or one plane with C = 1), goes to cell `slots[r]` of the mosaics in
    row-major order; the parts of a cell outside the content are left as they are; `extra` (rows, columns): blocks
    that much larger than the cells (`packing.pack_cells`). False (nothing written) when the compiled loops are off
    or the frames are not contiguous uint8 [Hn, Wn, C] of one size."""
    if not compiled() or not frames:
        return False
    shape = getattr(frames[0], "shape", None)
    for frame in frames:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != shape:
            return False
        if frame.ndim != 3 or frame.shape[2] != mosaics.shape[3] or not frame.flags.c_contiguous:
            return False
    _kernels.pack_cells(
        frames,
        np.ascontiguousarray(frame_of, dtype=np.int32),
        np.ascontiguousarray(cell_rows, dtype=np.int32),
        np.ascontiguousarray(cell_cols, dtype=np.int32),
        np.ascontiguousarray(slots, dtype=np.int32),
        patch_size,
        pad_top,
        pad_left,
        mosaics,
        *extra,
    )
    return True


def cut_cells(
    buffer: np.ndarray, *, pitch: int, images: int, grid: int, patch_size: int, grow: tuple[int, int], channels: int
) -> bool:
    """In place: the middle `patch_size` pixels of each block of an image of `images` * `grid` blocks of
    `patch_size` + 2 `grow[0]` rows by `grid` blocks of `patch_size` + 2 `grow[1]` columns (uint8 `buffer`, 1-D,
    rows `pitch` bytes apart, `channels` bytes per pixel) become, from its first byte, the contiguous uint8
    [images, grid * patch_size, grid * patch_size, channels] of the cells. False (nothing changed) when the compiled
    loops are off."""
    if not compiled():
        return False
    _kernels.cut_cells(buffer, pitch, images, grid, patch_size, grow[0], grow[1], channels)
    return True


def order_stats(rows: np.ndarray, low: int, high: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The `low`-th and `high`-th smallest (0-based) of each row of float32 `rows` [B, n] (finite values): the values
    `np.partition` puts there, float32 [B] each (of equal values -0.0 and 0.0 either may come). None when the
    compiled loops are off or `rows` is not float32 [B, n]."""
    if not compiled() or rows.dtype != np.float32 or rows.ndim != 2 or rows.shape[1] == 0:
        return None
    lows, highs = np.empty(rows.shape[0], np.float32), np.empty(rows.shape[0], np.float32)
    _kernels.order_stats(np.ascontiguousarray(rows), low, high, lows, highs)
    return lows, highs
