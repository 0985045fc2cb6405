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
    grid = size // patch_size
    cells = grid * grid
    positions_thw = np.asarray(positions_thw, dtype=np.int64)
    k = positions_thw.shape[0]
    if k > num_images * cells:
        raise ValueError(f"{k} positions do not fit in {num_images} images of {cells} cells")
    side = grid * patch_size
    # Cells are written straight into the mosaics, seen as [N, G, p, G, p, 3] (no cell array to transpose and copy).
    mosaics = np.zeros((num_images, size, size, 3), dtype=np.uint8)
    src = np.asarray(frame_of_t)[positions_thw[:, 0]]
    # Compiled: one row copy per cell row, no letterboxed canvas per frame (numpy below: 2-3x the time).
    if kernels.pack_cells(
        list(frames), src, cell_rows=positions_thw[:, 1], cell_cols=positions_thw[:, 2], patch_size=patch_size,
        pad_top=pad_top, pad_left=pad_left, mosaics=mosaics,
    ):  # fmt: skip
        return list(mosaics)
    target = mosaics[:, :side, :side].reshape(num_images, grid, patch_size, grid, patch_size, 3)
    rank = np.arange(k)
    image, row, col = rank // cells, (rank % cells) // grid, rank % grid
    blank = np.zeros((size, size, 3), dtype=np.uint8)  # one canvas for all frames (same size, same black padding)
    for f in sorted(set(src.tolist())):  # (np.unique would import numpy.ma: 20 ms on a process's first video)
        rows = np.flatnonzero(src == f)
        canvas = letterbox_canvas(frames[f], size, pad_top=pad_top, pad_left=pad_left, out=blank)
        # Cells as a view [G, p, G, p, 3]: one gather of whole cells instead of per-pixel index arithmetic.
        cell_view = canvas[:side, :side].reshape(grid, patch_size, grid, patch_size, 3)
        target[image[rows], row[rows], :, col[rows]] = cell_view[positions_thw[rows, 1], :, positions_thw[rows, 2]]
    return list(mosaics)


def letterbox_canvas(
    content: np.ndarray, square_size: int, *, pad_top: int = 0, pad_left: int = 0, out: np.ndarray | None = None
) -> np.ndarray:
    """uint8 [S, S, 3] black canvas with `content` [Hn, Wn, 3] placed at (pad_top, pad_left) (content that is
    already a whole canvas is returned as it is). `out`: a canvas to write into, black where the content does not
    go (a new one, or one last filled with content of the same size and place)."""
    if content.shape[:2] == (square_size, square_size) and pad_top == 0 and pad_left == 0:
        return content
    canvas = out if out is not None else np.zeros((square_size, square_size, 3), dtype=np.uint8)
    canvas[pad_top : pad_top + content.shape[0], pad_left : pad_left + content.shape[1]] = content
    return canvas
