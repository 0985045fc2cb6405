"""The sampled frames' pixels, kept as 4:2:0 planes until the mosaics are made.

`select_patches` keeps the letterboxed content of every sampled frame (64 by default) while it decodes, because the
kept cells are known only at the end. As RGB that is 36 MB for 360p content (~9k fresh pages to fault in a new
process) and an RGB conversion of every sampled frame; as the 4:2:0 planes of `RgbScaler.planes` it is half the
bytes, and RGB is made only of the mosaics (8 squares instead of 64 frames). The pixels are the same: swscale's
4:2:0 -> RGB conversion is pointwise, so planes assembled from cells that start on even rows and columns convert to
the cells of the converted frames (`tests/cv_reader/test_planar.py`). An odd letterbox pad (PAL 720x576, 852x480,
2.39:1) puts every cell's edges inside 4:2:0 blocks: those cells are packed with the samples that complete their
blocks and cut out after the conversion (the same pixels again; kept as RGB instead, such frames took twice the
memory and an RGB conversion each: fresh processes, 5-s 852x480 clip 0.92x the CPU, 0.70x the page faults, 0.97x
the wall time; 4-s PAL 0.87x CPU, 0.93x wall; a 10-s PAL clip, where decoding is the critical path and the cut adds
to the last step, 0.93x CPU but 1.02x wall).
Cells of an odd size are no whole blocks at all: there the frames are kept as RGB, converted as they come
(`planar=False`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np

from . import kernels
from .decode import COLOUR_PROPERTIES, ThreadScalers, decoder_threads, plane_array, process_cores
from .packing import pack_cells

# Frames are stored in blocks of 16-32 MiB (one smaller block when they take less), below glibc's 32 MiB mmap
# threshold (`process_settings`), so the blocks are reused across videos.
BLOCK_BYTES = 16 << 20
PAGE_BYTES = 4096  # (`touch`: one write per page of this size faults every page in; larger pages only get more)


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
    def planes_fit(*, square_size: int, patch_size: int) -> bool:
        """Whether mosaics can be made from the planes: canvas and cells of even sizes, so that every cell is whole
        4:2:0 blocks of the content, or (an odd pad) starts and ends in the middle of one (`mosaics` then takes the
        blocks whole); else they are made from each frame's RGB."""
        return not (square_size % 2 or patch_size % 2)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.rgb(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.rgb(i) for i in range(len(self)))

    def put(self, index: int, planes: av.VideoFrame) -> None:
        """Store frame `index` from `RgbScaler.planes` output (yuv420p, `rows` x `width`; of an odd height, planar,
        also `height` x `width`: the repeated last row is added here)."""
        heights = (self.rows, self.height) if self.planar else (self.rows,)
        if planes.format.name != "yuv420p" or planes.width != self.width or planes.height not in heights:
            raise ValueError(f"expected yuv420p {self.width}x{self.rows}, got {planes.format.name} {planes.width}x"
                             f"{planes.height}")  # fmt: skip
        first = index - index % self._block_rows
        data = self._block(first)[index - first]
        if self.planar:
            for plane, view in zip(planes.planes, self._views(data), strict=True):
                samples = plane_array(plane)
                view[: len(samples)] = samples
                view[len(samples) :] = samples[-1]  # (an odd height: its last luma row again, never shown)
        else:
            data.reshape(self.height, self.width, 3)[...] = self._scalers.scaler.rgb(planes, height=self.height)
        self.data[index] = data
        self.colour[index] = tuple(getattr(planes, name) for name in COLOUR_PROPERTIES)

    def touch(self) -> None:
        """Make every block now and write one byte of each of its pages (any thread: `put` takes the same lock). A
        new process maps a fresh page at its first write, ~1.5 us each on the 2-core VMs this package is measured on
        (a 360p clip's store: 4.4k pages); `select_patches` has its idle energy thread do that before its first
        batch, instead of the thread that stores the first canvas of each page."""
        for first in range(0, len(self.data), self._block_rows):
            self._block(first).reshape(-1)[::PAGE_BYTES] = 0

    def _block(self, first: int) -> np.ndarray:
        """The block of frames from `first` on (a multiple of `_block_rows`), made at its first use."""
        with self._block_lock:
            block = self._blocks.get(first)
            if block is None:
                rows = min(self._block_rows, len(self.data) - first)
                block = self._blocks[first] = np.empty((rows, self.frame_bytes), dtype=np.uint8)
            return block

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
        if not self.planar:
            out = np.zeros((num_images, size, size, 3), dtype=np.uint8)
            pack_cells(
                [self.rgb(f) for f in range(len(self))], src, cell_rows=cell_rows, cell_cols=cell_cols, slots=slots,
                patch_size=patch, pad_top=pad_top, pad_left=pad_left, mosaics=out,
            )  # fmt: skip
            return out
        if not self.planes_fit(square_size=size, patch_size=patch) or len(colours) > 1:
            # Cells of an odd size (or frames converted differently): one frame at a time.
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
        # An odd pad puts every cell's edge inside a 4:2:0 block of the content (PAL 720x576, 852x480, 2.39:1): each
        # cell is packed with the row (column) before and after it, whole blocks, into blocks of patch + 2 samples,
        # and cut out of them after the conversion (as pointwise: the pixels of the converted frames).
        grow_y, grow_x = pad_top % 2, pad_left % 2
        block_h, block_w = patch + 2 * grow_y, patch + 2 * grow_x
        grid = size // patch
        # (Cells that are whole blocks: the mosaics themselves, S x S; else a grid of the grown blocks.)
        side_h, side_w = (grid * block_h, grid * block_w) if grow_y or grow_x else (size, size)
        tall = self._frame(side_w, num_images * side_h, colours.pop())

        def pack(p: int, scale: int) -> None:
            # Luma without the repeated row of an odd height: that row is padding (black) on the canvas.
            frames = [v[0][: self.height, :, None] if p == 0 else v[p][..., None] for v in views]
            mosaic = plane_array(tall.planes[p])
            # (a view of the plane, rows padded or not: never a copy)
            mosaic.shape = (num_images, side_h // scale, side_w // scale, 1)
            pack_cells(
                frames, src, cell_rows=cell_rows, cell_cols=cell_cols, slots=slots, patch_size=patch // scale,
                pad_top=(pad_top + grow_y) // scale, pad_left=(pad_left + grow_x) // scale, mosaics=mosaic,
                extra=(2 * grow_y // scale, 2 * grow_x // scale),
            )  # fmt: skip

        # Chroma on a second thread while this one packs luma (as many row copies: a cell has as many chroma rows
        # as luma rows), unless this process has one core (a batch worker's share of them, or a one-CPU machine).
        planes = [(0, 1), (1, 2), (2, 2)]
        if process_cores() == 1:
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
        converted = self._scalers.scaler.rgb_frame(tall, threads=decoder_threads())
        if not (grow_y or grow_x):
            out = converted.to_ndarray()[: num_images * size].reshape(num_images, size, size, 3)
        elif size == grid * patch and kernels.cut_cells(
            memory := np.frombuffer(converted.planes[0], np.uint8), pitch=converted.planes[0].line_size,
            images=num_images, grid=grid, patch_size=patch, grow=(grow_y, grow_x), channels=3,
        ):  # fmt: skip
            # (The cells cut out in the converted picture's own memory: no second 8 MB image to fault in.)
            out = memory[: num_images * size * size * 3].reshape(num_images, size, size, 3)
        else:
            out = np.empty((num_images, size, size, 3), dtype=np.uint8)
            cells = out[:, : grid * patch, : grid * patch]
            cells.shape = (num_images, grid, patch, grid, patch, 3)
            blocks = converted.to_ndarray()[: num_images * side_h].reshape(num_images, grid, block_h, grid, block_w, 3)
            cells[...] = blocks[:, :, grow_y : grow_y + patch, :, grow_x : grow_x + patch]
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
