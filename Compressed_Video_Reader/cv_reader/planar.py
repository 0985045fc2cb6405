"""The sampled frames' pixels, kept as 4:2:0 planes until the mosaics are made.

`select_patches` keeps the letterboxed content of every sampled frame (64 by default) while it decodes, because the
kept cells are known only at the end. As RGB that is 36 MB for 360p content (~9k fresh pages to fault in a new
process) and an RGB conversion of every sampled frame; as the 4:2:0 planes of `RgbScaler.planes` it is half the
bytes, and RGB is made only of the mosaics (8 squares instead of 64 frames). The pixels are the same: swscale's
4:2:0 -> RGB conversion is pointwise, so planes assembled from cells that start on even rows and columns convert to
the cells of the converted frames (`tests/cv_reader/test_planar.py`). Where the cells do not (an odd letterbox pad:
PAL 720x576, 2.39:1; an odd cell size) the frames are kept as RGB, converted as they come (`planar=False`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np

from .decode import COLOUR_PROPERTIES, ThreadScalers, decoder_threads, plane_array
from .packing import pack_cells

# Frames are stored in blocks of 16-32 MiB (one smaller block when they take less), below glibc's 32 MiB mmap
# threshold (`process_settings`), so the blocks are reused across videos.
BLOCK_BYTES = 16 << 20


class PlanarFrames:
    """uint8 4:2:0 planes (or with `planar=False`, RGB) of the content rectangles (`height` x `width`, display
    orientation) of `count` frames, filled in any order by `put` (from any threads at once: `select_patches`
    stores canvases on whichever helper is idle). A sequence of RGB content arrays [height, width, 3] (each made
    when asked for, black for a frame never put), with `mosaics` for the cells that are kept."""

    def __init__(self, count: int, *, height: int, width: int, planar: bool = True) -> None:
        self.height, self.width, self.planar = height, width, planar
        self.rows = height + height % 2  # an odd height is stored one (repeated) row taller: `RgbScaler.planes`
        self.chroma = (self.rows // 2, (width + 1) // 2)
        self.frame_bytes = self.rows * width + 2 * self.chroma[0] * self.chroma[1] if planar else height * width * 3
        self.data: list[np.ndarray | None] = [None] * count
        self.colour: list[tuple | None] = [None] * count
        self._blocks: dict[int, np.ndarray] = {}  # first frame -> block of `_block_rows` frames
        self._block_rows = -(-count // max(1, count * self.frame_bytes // BLOCK_BYTES)) if count else 1
        self._block_lock = threading.Lock()  # two threads putting frames of one new block make it once
        self._scalers = ThreadScalers()  # (their conversion pass only)

    @staticmethod
    def cells_aligned(*, square_size: int, patch_size: int, pad_top: int, pad_left: int) -> bool:
        """Whether every canvas cell starts on a 4:2:0 block of the content (even pads and sizes): then mosaics are
        made from the planes, else from each frame's RGB."""
        return not (square_size % 2 or patch_size % 2 or pad_top % 2 or pad_left % 2)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.rgb(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.rgb(i) for i in range(len(self)))

    def put(self, index: int, planes: av.VideoFrame) -> None:
        """Store frame `index` from `RgbScaler.planes` output (yuv420p, `rows` x `width`)."""
        if planes.format.name != "yuv420p" or (planes.height, planes.width) != (self.rows, self.width):
            raise ValueError(f"expected yuv420p {self.width}x{self.rows}, got {planes.format.name} {planes.width}x"
                             f"{planes.height}")  # fmt: skip
        first = index - index % self._block_rows
        with self._block_lock:
            block = self._blocks.get(first)
            if block is None:
                rows = min(self._block_rows, len(self.data) - first)
                block = self._blocks[first] = np.empty((rows, self.frame_bytes), dtype=np.uint8)
        data = block[index - first]
        if self.planar:
            for plane, view in zip(planes.planes, self._views(data), strict=True):
                view[...] = plane_array(plane)
        else:
            data.reshape(self.height, self.width, 3)[...] = self._scalers.scaler.rgb(planes, height=self.height)
        self.data[index] = data
        self.colour[index] = tuple(getattr(planes, name) for name in COLOUR_PROPERTIES)

    def _views(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Y [rows, width], U, V [rows / 2, ceil(width / 2)]) views of one stored frame."""
        luma = self.rows * self.width
        size = self.chroma[0] * self.chroma[1]
        return (
            data[:luma].reshape(self.rows, self.width),
            data[luma : luma + size].reshape(self.chroma),
            data[luma + size :].reshape(self.chroma),
        )

    @staticmethod
    def _frame(width: int, height: int, colour: tuple) -> av.VideoFrame:
        """A yuv420p frame (samples not initialised) with the colour properties `colour`."""
        frame = av.VideoFrame(width, height, "yuv420p")
        for name, value in zip(COLOUR_PROPERTIES, colour, strict=True):
            setattr(frame, name, value)
        return frame

    def _convert(self, planes: tuple[np.ndarray, ...], colour: tuple, *, height: int) -> np.ndarray:
        """RGB [height, W, 3] of yuv420p `planes` (Y, U, V) with the colour properties `colour`."""
        frame = self._frame(planes[0].shape[1], planes[0].shape[0], colour)
        for plane, view in zip(frame.planes, planes, strict=True):
            plane_array(plane)[...] = view
        return self._scalers.scaler.rgb(frame, height=height)

    def rgb(self, index: int) -> np.ndarray:
        """uint8 [height, width, 3] RGB of frame `index` (black if it was never put)."""
        data = self.data[index]
        if data is None:
            return np.zeros((self.height, self.width, 3), dtype=np.uint8)
        if not self.planar:
            return data.reshape(self.height, self.width, 3)
        return self._convert(self._views(data), self.colour[index], height=self.height)

    def mosaics(
        self,
        src: np.ndarray,
        *,
        cell_rows: np.ndarray,
        cell_cols: np.ndarray,
        num_images: int,
        patch_size: int,
        square_size: int,
        pad_top: int,
        pad_left: int,
    ) -> np.ndarray:
        """uint8 [num_images, S, S, 3]: kept cell r (canvas cell (`cell_rows[r]`, `cell_cols[r]`) of frame `src[r]`,
        the content placed on the S x S canvas at the pads) in cell r of the mosaics, row-major; everything else is
        black. The pixels of `packing.pack_mosaics` of the RGB frames."""
        size, patch = square_size, patch_size
        kept = len(src)
        src = np.asarray(src, dtype=np.int64)
        slots = np.arange(kept)
        used = sorted(set(src.tolist()))
        colours = {self.colour[f] for f in used if self.data[f] is not None}
        if not colours:
            return np.zeros((num_images, size, size, 3), dtype=np.uint8)  # no cells, or only of frames never put
        aligned = self.cells_aligned(square_size=size, patch_size=patch, pad_top=pad_top, pad_left=pad_left)
        if not self.planar:
            out = np.zeros((num_images, size, size, 3), dtype=np.uint8)
            pack_cells(
                [self.rgb(f) for f in range(len(self))], src, cell_rows=cell_rows, cell_cols=cell_cols, slots=slots,
                patch_size=patch, pad_top=pad_top, pad_left=pad_left, mosaics=out,
            )  # fmt: skip
            return out
        if not aligned or len(colours) > 1:
            # Cells that do not start on a 4:2:0 block (or frames converted differently): one frame at a time.
            out = np.zeros((num_images, size, size, 3), dtype=np.uint8)
            for f in used:
                rows = np.flatnonzero(src == f)
                pack_cells(
                    [self.rgb(f)], np.zeros(len(rows), dtype=np.int64), cell_rows=cell_rows[rows],
                    cell_cols=cell_cols[rows], slots=rows, patch_size=patch, pad_top=pad_top, pad_left=pad_left,
                    mosaics=out,
                )  # fmt: skip
            return out
        blank = np.zeros(self.frame_bytes, dtype=np.uint8)  # frames never put: black, below
        views = [self._views(self.data[f] if self.data[f] is not None else blank) for f in range(len(self))]
        # The mosaics are one tall picture, its planes packed in place and converted in one call (pointwise: the same
        # pixels as one mosaic at a time, without a frame, a call and a copy per mosaic). Samples outside the kept
        # cells' content are left as they are: they only make pixels that `_blacken` zeroes after the conversion.
        tall = self._frame(size, num_images * size, colours.pop())
        half = (size // 2, patch // 2, pad_top // 2, pad_left // 2)

        def pack(p: int, side: int, cell: int, top: int, left: int) -> None:
            # Luma without the repeated row of an odd height: that row is padding (black) on the canvas.
            frames = [v[0][: self.height, :, None] if p == 0 else v[p][..., None] for v in views]
            mosaic = plane_array(tall.planes[p])
            mosaic.shape = (num_images, side, side, 1)  # (a view of the plane, rows padded or not: never a copy)
            pack_cells(
                frames, src, cell_rows=cell_rows, cell_cols=cell_cols, slots=slots, patch_size=cell, pad_top=top,
                pad_left=left, mosaics=mosaic,
            )  # fmt: skip

        # Chroma on a second thread while this one packs luma (as many row copies: a cell has as many chroma rows
        # as luma rows), unless this process decodes with one thread (a batch worker's share of the cores).
        planes = [(0, size, patch, pad_top, pad_left), (1, *half), (2, *half)]
        if decoder_threads() == 1:
            for plane in planes:
                pack(*plane)
        else:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cv_reader_mosaics") as pool:
                chroma = pool.submit(lambda: [pack(*plane) for plane in planes[1:]])
                pack(*planes[0])
                chroma.result()
        # Converted on every core (or this process's share of them, `set_decoder_threads`): the last step of a video,
        # when the helper threads are done and nothing else runs. With the chroma thread above: the 8 mosaics of a
        # 4-s 360p clip in a fresh process 8.6 -> 6.5 ms (median of 8; the conversion 4.3 -> 3.4 ms, most of it the
        # first touch of the 8 MB output).
        out = self._scalers.scaler.rgb(tall, height=num_images * size, threads=decoder_threads())
        out = out.reshape(num_images, size, size, 3)
        self._blacken(out, src, cell_rows=cell_rows, cell_cols=cell_cols, patch=patch, pad_top=pad_top,
                      pad_left=pad_left)  # fmt: skip
        return out

    def _blacken(
        self,
        out: np.ndarray,
        src: np.ndarray,
        *,
        cell_rows: np.ndarray,
        cell_cols: np.ndarray,
        patch: int,
        pad_top: int,
        pad_left: int,
    ) -> None:
        """Zero what the RGB mosaics show that is not content: the canvas padding inside kept cells (converted
        from zero planes, and the padding rows and columns that share a 4:2:0 block with content), the cells of
        frames never put, the empty cells past the kept ones, and the strip past the last whole cell."""
        num_images, size = out.shape[0], out.shape[1]
        grid = size // patch
        side, cells = grid * patch, grid * grid
        out[:, side:] = 0
        out[:, :, side:] = 0
        kept = len(src)
        view = out[:, :side, :side].reshape(num_images, grid, patch, grid, patch, 3)

        def zero(slots: np.ndarray, rows: slice = slice(None), cols: slice = slice(None)) -> None:
            view[slots // cells, (slots % cells) // grid, rows, slots % grid, cols] = 0

        full_images = -(-kept // cells)  # images past the last kept cell, then the empty cells of the last one
        out[full_images:] = 0
        zero(np.arange(kept, min(full_images * cells, num_images * cells)))
        # Visible rows [top, bottom) and columns [left, right) of each kept cell, in cell coordinates.
        y0 = np.asarray(cell_rows, dtype=np.int64) * patch - pad_top
        x0 = np.asarray(cell_cols, dtype=np.int64) * patch - pad_left
        top, bottom = np.clip(-y0, 0, patch), np.clip(self.height - y0, 0, patch)
        left, right = np.clip(-x0, 0, patch), np.clip(self.width - x0, 0, patch)
        absent = np.array([data is None for data in self.data], dtype=bool)[src]
        bottom[absent] = 0
        partial = np.flatnonzero((top > 0) | (bottom < patch) | (left > 0) | (right < patch))
        if not len(partial):
            return
        # Cells with the same visible part are zeroed together: a letterbox gives a few (its first and last cell
        # rows or columns), and slices of whole groups cost far less than a mask per cell.
        span = patch + 1
        keys = ((top[partial] * span + bottom[partial]) * span + left[partial]) * span + right[partial]
        order = np.argsort(keys, kind="stable")
        starts = np.flatnonzero(np.diff(keys[order], prepend=-1))
        for group in np.split(partial[order], starts[1:]):
            first = group[0]
            if top[first] >= bottom[first] or left[first] >= right[first]:
                zero(group)
                continue
            zero(group, rows=slice(0, top[first]))
            zero(group, rows=slice(bottom[first], patch))
            zero(group, cols=slice(0, left[first]))
            zero(group, cols=slice(right[first], patch))
