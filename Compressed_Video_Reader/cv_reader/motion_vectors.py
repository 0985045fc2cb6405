"""Codec motion vectors (FFmpeg `AVMotionVector` records) rasterised onto the 4x4-pixel block grid (spec 2.3)."""

from __future__ import annotations

import numpy as np

from . import kernels

BLOCK = 4  # the grid cell of the upstream reader: one vector per 4x4 luma pixels


def rasterize_motion_vectors(records: np.ndarray | None, *, height: int, width: int) -> np.ndarray:
    """The upstream reader's integer MV grid, bit-exact for H.264 (spec 2.3).

    Args:
        records: structured array of `AVMotionVector` (fields `source, w, h, src_x, src_y, dst_x, dst_y, motion_x,
            motion_y, motion_scale`) or None (I-frame: no side data).
        height, width: coded luma size in pixels.

    Returns:
        int32 [height//4, width//4, 4] = (L0_x, L0_y, L1_x, L1_y) in integer pixels, `src - dst`; zero where no
        vector was coded (intra blocks, unused list).
    """
    rows, cols = height // BLOCK, width // BLOCK
    grid = np.zeros((rows, cols, 4), dtype=np.int32)
    if records is None or len(records) == 0:
        return grid
    values = np.stack(
        [records["src_x"].astype(np.int32) - records["dst_x"], records["src_y"].astype(np.int32) - records["dst_y"]],
        axis=1,
    )
    values = np.concatenate([values, np.zeros((1, 2), np.int32)])  # row -1: "no vector" -> 0
    owner = block_owner(records, rows=rows, cols=cols)[0]
    grid[..., 0:2] = values[owner[..., 0]]
    grid[..., 2:4] = values[owner[..., 1]]
    return grid


def field_blocks(records: list[np.ndarray | None]) -> list[int]:
    """Per frame, the coarsest grid that still holds every record exactly: 8 px when every partition is at least
    8x8 and 8-aligned (H.264 exports sub-8x8 partitions as 8x8, spec 2.3), else the 4-px grid of the upstream
    reader. The 8-px grid holds the same values as the 4-px one with a quarter of the cells to process."""
    compiled = kernels.field_blocks(records)
    if compiled is not None:
        return compiled
    sizes = [0 if r is None else len(r) for r in records]
    blocks = [2 * BLOCK] * len(records)
    present = [n for n, size in enumerate(sizes) if size]
    if not present:
        return blocks
    recs = concat_records([records[n] for n in present])
    w, h = recs["w"].astype(np.int32), recs["h"].astype(np.int32)
    left = recs["dst_x"] - (w >> 1)
    top = recs["dst_y"] - (h >> 1)
    aligned = (w >= 8) & (h >= 8) & ((left | top) & 7 == 0)  # 8-aligned: the low 3 bits of both are zero
    starts = np.cumsum([0] + [sizes[n] for n in present[:-1]])
    for n, ok in zip(present, np.logical_and.reduceat(aligned, starts).tolist(), strict=True):
        blocks[n] = 2 * BLOCK if ok else BLOCK
    return blocks


def motion_fields(
    records: list[np.ndarray | None], *, height: int, width: int, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel motion per `block` x `block` cell (4 or 8 px, see `field_blocks`) for both prediction directions,
    for a batch of frames (one gather for all of them: the per-call cost of numpy dominates at these sizes).

    Returns:
        `(field, has)`: float32 [B, height//block, width//block, 4] = (L0_x, L0_y, L1_x, L1_y) in pixels from
        `motion_x / motion_scale` (quarter-pel precision for H.264, unlike the integer `src - dst`), and
        bool [B, height//block, width//block, 2] telling which direction has a vector (both False = intra or no
        data).
    """
    rows, cols = height // block, width // block
    count = len(records)
    sizes = [0 if r is None else len(r) for r in records]
    if not any(sizes):
        return np.zeros((count, rows, cols, 4), dtype=np.float32), np.zeros((count, rows, cols, 2), dtype=bool)
    compiled = kernels.motion_fields(records, rows=rows, cols=cols, block=block)
    if compiled is not None:  # (read from the records themselves: no concatenated copy, no field arrays)
        return compiled
    recs = concat_records([r for r, size in zip(records, sizes, strict=True) if size])
    frame = np.repeat(np.arange(count), sizes)
    scale = np.maximum(recs["motion_scale"].astype(np.float32), 1.0)
    values = np.stack([recs["motion_x"] / scale, recs["motion_y"] / scale], axis=1).astype(np.float32)
    values = np.concatenate([values, np.zeros((1, 2), np.float32)])  # row -1: "no vector" -> 0
    owner = block_owner(recs, rows=rows, cols=cols, block=block, frame=frame, count=count)
    # One (x, y) pair per owner as one 8-byte word: a 1-D gather, 5x faster than gathering rows of two floats.
    pairs = np.take(values.view(np.uint64).reshape(-1), owner)
    return pairs.view(np.float32).reshape(count, rows, cols, 4), owner >= 0


def concat_records(records: list[np.ndarray]) -> np.ndarray:
    """Concatenate contiguous `AVMotionVector` record arrays through their bytes (a field-by-field structured
    copy is 10x slower)."""
    if len(records) == 1:
        return records[0]
    return np.concatenate([np.ascontiguousarray(r).view(np.uint8) for r in records]).view(records[0].dtype)


def motion_field(
    records: np.ndarray | None, *, height: int, width: int, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """`motion_fields` of one frame: float32 [height//block, width//block, 4] and bool [..., 2]."""
    field, has = motion_fields([records], height=height, width=width, block=block)
    return field[0], has[0]


def block_owner(
    records: np.ndarray,
    *,
    rows: int,
    cols: int,
    block: int = BLOCK,
    frame: np.ndarray | None = None,
    count: int = 1,
) -> np.ndarray:
    """int32 [count, rows, cols, 2]: index of the record covering each `block`-px cell for list 0 / list 1, -1
    where none. `frame` (int [len(records)], default all 0) says which of the `count` frames a record belongs to.

    Blocks are centred on `dst` (FFmpeg convention): rows `[dst_y//b - h//(2b), dst_y//b + h//(2b))` for cell size
    b, clipped to the grid (spec 2.3 with b = 4). Writing record indices once (instead of every value channel)
    keeps this ~1 ms per frame. The partitions of one list of one frame do not overlap, so the order in which the
    partition sizes are written does not matter.
    """
    owner = np.full(count * rows * cols * 2, -1, dtype=np.int32)  # flat (frame, row, col, list)
    # int32 index arithmetic: a batch of 8 frames at 4K on the 4-px grid is 8.3M cells, far below 2**31.
    w = records["w"].astype(np.int32)
    h = records["h"].astype(np.int32)
    nh, nw = np.maximum(h // block, 1), np.maximum(w // block, 1)
    r0 = records["dst_y"].astype(np.int32) // block - h // (2 * block)
    c0 = records["dst_x"].astype(np.int32) // block - w // (2 * block)
    first = (r0 * cols + c0) * 2 + (records["source"] > 0)
    if frame is not None:
        first += frame.astype(np.int32) * (rows * cols * 2)
    # The few distinct partition sizes (w, h are uint8: at most 64 x 64 cells), counted rather than sorted.
    key = nh * 256 + nw
    for size in np.flatnonzero(np.bincount(key)).tolist():
        size_h, size_w = divmod(size, 256)
        members = np.flatnonzero(key == size)
        offsets = (np.arange(size_h, dtype=np.int32)[:, None] * cols + np.arange(size_w, dtype=np.int32)) * 2
        top, left = r0[members], c0[members]
        crossing = (top < 0) | (left < 0) | (top + size_h > rows) | (left + size_w > cols)
        if crossing.any():  # blocks crossing the border (e.g. the last macroblock row of 1080p): the cells inside
            edge = members[crossing]
            rr = (r0[edge, None] + np.arange(size_h, dtype=np.int32))[:, :, None]
            cc = (c0[edge, None] + np.arange(size_w, dtype=np.int32))[:, None, :]
            inside = (rr >= 0) & (rr < rows) & (cc >= 0) & (cc < cols)
            owner[(first[edge, None, None] + offsets)[inside]] = np.broadcast_to(edge[:, None, None], inside.shape)[
                inside
            ]
            members = members[~crossing]
        owner[(first[members, None] + offsets.reshape(-1)).reshape(-1)] = np.repeat(members, size_h * size_w)
    return owner.reshape(count, rows, cols, 2)
