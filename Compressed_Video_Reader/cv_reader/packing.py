"""Packing kept cells into mosaics (spec 8.4, layout `time_spatial`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import kernels


def pack_mosaics(
    frames: Sequence[np.ndarray] | np.ndarray,
    frame_of_t: np.ndarray,
    *,
    positions_thw: np.ndarray,
    num_images: int,
    patch_size: int,
    square_size: int | None = None,
    pad_top: int = 0,
    pad_left: int = 0,
) -> list[np.ndarray]:
    """Copy each kept cell into row-major mosaics.

    Args:
        frames: per distinct sampled frame, uint8 RGB placed on the square canvas at (`pad_top`, `pad_left`): either
            whole letterboxed canvases [S, S, 3] (pads 0) or only their content rectangles [Hn, Wn, 3] (the pipeline
            keeps just those: half the memory for portrait video, and no canvas to build).
        frame_of_t: int [T] index into `frames` for each temporal slot t.
        positions_thw: int [K, 3] kept cells sorted by (t, h, w) (`positions_from_visidx`).
        num_images: number of mosaics; each holds G*G cells, G = S // patch_size.
        patch_size: cell size in pixels.
        square_size: canvas side S (default: the side of `frames[0]`, which must then be square).

    Returns:
        `num_images` uint8 [S, S, 3] arrays. Row r of `positions_thw` lands in image r // (G*G), cell
        ((r % G*G) // G, r % G); with t=0 kept whole in raster order image 0 is frame t=0 in full. Cells past K and
        letterbox padding stay black.
    """
    size = square_size or frames[0].shape[0]
    cells = (size // patch_size) ** 2
    positions_thw = np.asarray(positions_thw, dtype=np.int64)
    k = positions_thw.shape[0]
    if k > num_images * cells:
        raise ValueError(f"{k} positions do not fit in {num_images} images of {cells} cells")
    mosaics = np.zeros((num_images, size, size, 3), dtype=np.uint8)
    src = np.asarray(frame_of_t)[positions_thw[:, 0]]
    pack_cells(
        frames, src, cell_rows=positions_thw[:, 1], cell_cols=positions_thw[:, 2], slots=np.arange(k),
        patch_size=patch_size, pad_top=pad_top, pad_left=pad_left, mosaics=mosaics,
    )  # fmt: skip
    return list(mosaics)


def pack_cells(
    frames: Sequence[np.ndarray],
    src: np.ndarray,
    *,
    cell_rows: np.ndarray,
    cell_cols: np.ndarray,
    slots: np.ndarray,
    patch_size: int,
    pad_top: int,
    pad_left: int,
    mosaics: np.ndarray,
    extra: tuple[int, int] = (0, 0),
) -> None:
    """Copy kept cell r (canvas cell (`cell_rows[r]`, `cell_cols[r]`) of `frames[src[r]]`, uint8 [Hn, Wn, C] content
    placed at the pads) to cell `slots[r]` (row-major over the images) of `mosaics` uint8 [N, S, S, C]. The parts of
    a cell outside the content are left as they are. C is 3 for RGB, 1 for one plane of a 4:2:0 store.

    `extra` (rows, columns): each block copied is the cell's canvas rectangle grown by that many rows down and
    columns right, and the blocks tile `mosaics` [N, G * (patch + rows), G * (patch + columns), C] (G = the cells
    per side): `planar.PlanarFrames.mosaics` takes cells that start inside a 4:2:0 block with the samples that
    complete their blocks."""
    if kernels.pack_cells(
        list(frames), src, cell_rows=cell_rows, cell_cols=cell_cols, slots=slots, patch_size=patch_size,
        pad_top=pad_top, pad_left=pad_left, mosaics=mosaics, extra=extra,
    ):  # fmt: skip
        return  # compiled: one row copy per cell row, no letterboxed canvas per frame (numpy below: 2-3x the time)
    num_images, channels = mosaics.shape[0], mosaics.shape[3]
    block_h, block_w = patch_size + extra[0], patch_size + extra[1]
    grid = mosaics.shape[2] // block_w
    # Blocks are written straight into the mosaics, seen as [N, G, bh, G, bw, C] (no block array to transpose and
    # copy; a view, never a copy, also of mosaics whose rows are padded).
    target = mosaics[:, : grid * block_h, : grid * block_w]
    target.shape = (num_images, grid, block_h, grid, block_w, channels)
    slots, cell_rows, cell_cols = (np.asarray(a, dtype=np.int64) for a in (slots, cell_rows, cell_cols))
    image, row, col = slots // (grid * grid), (slots % (grid * grid)) // grid, slots % grid
    # One canvas for all frames (same size and padding); with `extra`, large enough for the grown blocks too.
    size = mosaics.shape[1]
    if extra != (0, 0):
        content = np.shape(frames[0]) if len(frames) else (0, 0)
        size = max(grid * patch_size + max(extra), pad_top + content[0], pad_left + content[1])
    blank = np.zeros((size, size, channels), dtype=np.uint8)
    src = np.asarray(src)
    for f in sorted(set(src.tolist())):  # (np.unique would import numpy.ma: 20 ms on a process's first video)
        rows = np.flatnonzero(src == f)
        canvas = letterbox_canvas(frames[f], size, pad_top=pad_top, pad_left=pad_left, out=blank)
        if extra == (0, 0):  # cells as a view [G, p, G, p, C]: one gather of whole cells
            cell_view = canvas[: grid * patch_size, : grid * patch_size]
            cell_view = cell_view.reshape(grid, patch_size, grid, patch_size, channels)
            target[image[rows], row[rows], :, col[rows]] = cell_view[cell_rows[rows], :, cell_cols[rows]]
            continue
        ys = cell_rows[rows, None] * patch_size + np.arange(block_h)  # [k, bh] canvas rows of each block
        xs = cell_cols[rows, None] * patch_size + np.arange(block_w)
        blocks = canvas[ys[:, :, None], xs[:, None, :]]  # [k, bh, bw, C]
        target[image[rows], row[rows], :, col[rows]] = blocks


def letterbox_canvas(
    content: np.ndarray, square_size: int, *, pad_top: int = 0, pad_left: int = 0, out: np.ndarray | None = None
) -> np.ndarray:
    """uint8 [S, S, C] black canvas with `content` [Hn, Wn, C] placed at (pad_top, pad_left) (content that is
    already a whole canvas is returned as it is). `out`: a canvas to write into, black where the content does not
    go (a new one, or one last filled with content of the same size and place)."""
    if content.shape[:2] == (square_size, square_size) and pad_top == 0 and pad_left == 0:
        return content
    canvas = out if out is not None else np.zeros((square_size, square_size, content.shape[2]), np.uint8)
    canvas[pad_top : pad_top + content.shape[0], pad_left : pad_left + content.shape[1]] = content
    return canvas
