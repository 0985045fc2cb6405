"""The 4:2:0 store of the sampled frames (`cv_reader.planar`): mosaics made from the kept cells' planes have exactly
the pixels of mosaics packed from each frame's RGB, for every letterbox geometry, colour range and gap."""

from __future__ import annotations

import sys
import threading

import av
import numpy as np
import pytest

from cv_reader import planar as planar_module
from cv_reader import select_patches
from cv_reader.decode import RgbScaler, plane_array
from cv_reader.geometry import letterbox
from cv_reader.packing import pack_mosaics
from cv_reader.planar import PlanarFrames

from .synth import moving_object_clip


def _random_frame(rng, height: int, width: int, *, colorspace: int = 1, color_range: int = 1) -> av.VideoFrame:
    """A yuv420p frame of random samples (any value: the conversion clips)."""
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        view = plane_array(plane)
        view[...] = rng.integers(0, 256, size=view.shape, dtype=np.uint8)
    frame.colorspace, frame.color_range = colorspace, color_range
    return frame


def _store(
    rng, count: int, *, height: int, width: int, missing: tuple[int, ...] = (), colours=None, planar: bool = True
) -> PlanarFrames:
    """A store of `count` random frames (content `height` x `width`) from `RgbScaler.planes`; `missing` never put."""
    store = PlanarFrames(count, height=height, width=width, planar=planar)
    scaler = RgbScaler()
    for i in range(count):
        if i in missing:
            continue
        colorspace, color_range = colours[i] if colours else (1, 1)
        # A source of another size, so the frame goes through the scaling pass as in the pipeline.
        source = _random_frame(rng, height * 2 + 2, width + 6, colorspace=colorspace, color_range=color_range)
        store.put(i, scaler.planes(source, height=height, width=width))
    return store


def _cells(rng, *, count: int, grid: int, kept: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`kept` random (frame, row, col) cells, padding cells included."""
    return rng.integers(0, count, kept), rng.integers(0, grid, kept), rng.integers(0, grid, kept)


GEOMETRIES = [
    # (H0, W0, S, patch): 16:9 (even pads), 4:3, portrait, PAL (odd top pad), CIF (odd content height, even pad),
    # cinemascope (odd top pad), 852x480 (odd content height and top pad), odd content width and left pad, odd left
    # pad at 224, odd cell size, odd square, tiny.
    (360, 640, 576, 16),
    (240, 320, 576, 16),
    (640, 360, 576, 16),
    (576, 720, 576, 16),
    (288, 352, 576, 16),
    (200, 478, 576, 16),
    (480, 852, 576, 16),
    (1000, 64, 576, 16),
    (640, 360, 224, 14),
    (360, 640, 224, 14),
    (360, 640, 225, 15),
    (18, 34, 96, 16),
]


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("threads", [0, 1])
@pytest.mark.parametrize("planar", [True, False])
@pytest.mark.parametrize(("h0", "w0", "size", "patch"), GEOMETRIES)
def test_mosaics_equal_the_mosaics_of_the_rgb_frames(h0, w0, size, patch, planar, threads, compiled, monkeypatch):
    """Planes or RGB (`planar=False`, what the pipeline keeps for cells of an odd size), cells on whole 4:2:0 blocks
    or not (an odd pad: cells packed with the samples completing their blocks, then cut out); with the planes
    packed and converted on several threads (the default) or on one (a batch worker's share); with the compiled
    loops and with their numpy versions."""
    monkeypatch.setattr(planar_module, "decoder_threads", lambda: threads)
    monkeypatch.setattr(planar_module, "process_cores", lambda: threads or 2)
    if not compiled:
        monkeypatch.setattr(planar_module.kernels, "enabled", False)
    rng = np.random.default_rng(h0 * 7 + w0 + size)
    box = letterbox(h0, w0, out_size=size)
    store = _store(rng, 6, height=box.Hn, width=box.Wn, missing=(4,), planar=planar)
    grid = size // patch
    kept = int(2.5 * grid * grid)  # the third mosaic part empty
    src, rows, cols = _cells(rng, count=6, grid=grid, kept=kept)
    rgb = [store.rgb(i) for i in range(6)]
    assert not rgb[4].any() and rgb[0].any()
    expected = pack_mosaics(
        rgb, np.arange(6), positions_thw=np.stack([src, rows, cols], axis=1), num_images=3, patch_size=patch,
        square_size=size, pad_top=box.pad_top, pad_left=box.pad_left,
    )  # fmt: skip
    fit = size % 2 == 0 and patch % 2 == 0
    assert PlanarFrames.planes_fit(square_size=size, patch_size=patch) == fit
    if fit and planar:
        # The planes are assembled and converted at once, odd pads too: no frame is converted alone.
        monkeypatch.setattr(PlanarFrames, "rgb", lambda self, index: pytest.fail("a frame was converted alone"))
    got = store.mosaics(
        src, cell_rows=rows, cell_cols=cols, num_images=3, patch_size=patch, square_size=size, pad_top=box.pad_top,
        pad_left=box.pad_left,
    )  # fmt: skip
    assert got.shape == (3, size, size, 3)
    for n in range(3):
        assert np.array_equal(got[n], expected[n]), f"mosaic {n}"
    assert got[1].any() and not got[2][-(-(kept - 2 * grid * grid) // grid) * patch :].any()


def test_each_frame_is_its_rgb_scaler_pixels():
    """`rgb(i)` of a stored frame is what `RgbScaler` makes of it in one go (odd height, a turned frame), from half
    the bytes."""
    rng = np.random.default_rng(3)
    for height, width, rotation in ((461, 576, 0), (324, 576, 90), (37, 576, 0)):
        source_h, source_w = (width, height) if rotation else (height, width)
        source = _random_frame(rng, source_h * 2 + 2, source_w + 10, colorspace=5)
        expected = RgbScaler()(source, height=height, width=width, rotation=rotation)
        for even_rows in (True, False):  # (an odd height's repeated row from the scaler, or added by `put`)
            store = PlanarFrames(1, height=height, width=width)
            planes = RgbScaler().planes(source, height=height, width=width, rotation=rotation, even_rows=even_rows)
            store.put(0, planes)
            assert np.array_equal(store.rgb(0), expected)
            assert store.frame_bytes <= (height + 1) * width * 3 // 2 + height + width
        rgb_store = PlanarFrames(1, height=height, width=width, planar=False)
        if height % 2:  # RGB is converted as it comes: from the planes with the repeated row only
            with pytest.raises(ValueError, match="expected yuv420p"):
                rgb_store.put(0, RgbScaler().planes(source, height=height, width=width, even_rows=False))


def test_full_range_and_mixed_colour_properties():
    """Frames in full range convert as full range; frames whose conversions differ (colour properties that change
    within the video) are converted one at a time, each with its own."""
    rng = np.random.default_rng(5)
    box = letterbox(360, 640, out_size=96)
    for colours in ([(1, 2)] * 4, [(1, 1), (5, 1), (1, 2), (1, 1)]):
        store = _store(rng, 4, height=box.Hn, width=box.Wn, colours=colours)
        src, rows, cols = _cells(rng, count=4, grid=6, kept=40)
        expected = pack_mosaics(
            [store.rgb(i) for i in range(4)], np.arange(4), positions_thw=np.stack([src, rows, cols], axis=1),
            num_images=2, patch_size=16, square_size=96, pad_top=box.pad_top, pad_left=box.pad_left,
        )  # fmt: skip
        got = store.mosaics(src, cell_rows=rows, cell_cols=cols, num_images=2, patch_size=16, square_size=96,
                            pad_top=box.pad_top, pad_left=box.pad_left)  # fmt: skip
        assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))
    limited = _store(np.random.default_rng(1), 1, height=8, width=8, colours=[(1, 1)]).rgb(0)
    full = _store(np.random.default_rng(1), 1, height=8, width=8, colours=[(1, 2)]).rgb(0)
    assert not np.array_equal(limited, full)


@pytest.mark.parametrize(
    ("height", "width", "size", "patch", "planar"),
    [(64, 128, 96, 16, True), (96, 120, 96, 16, True), (96, 120, 90, 15, False)],
)
def test_pipeline_mosaics_equal_its_sampled_frames_cells(tmp_path, height, width, size, patch, planar):
    """End to end: each mosaic cell of `select_patches` is that cell of the sampled frame's letterboxed canvas, from
    4:2:0 planes (even pads; an odd pad, here 120x96 on a 96 square: content 96x77, pad 9) or from RGB: cells of an
    odd size (15 px) are no whole 4:2:0 blocks, so such frames are kept as RGB, converted on the pixel thread."""
    path = moving_object_clip(tmp_path / "clip.mp4", num_frames=24, height=height, width=width).path
    selection = select_patches(path, num_frames=8, num_images=2, square_size=size, patch_size=patch)
    store = selection.frames
    assert isinstance(store, PlanarFrames) and store.planar is planar and store.frame_bytes == (
        (store.rows * store.width * 3 // 2 + store.rows // 2 * (store.width % 2)) if planar else
        store.height * store.width * 3
    )  # fmt: skip
    canvases = selection.sampled_frames()
    mosaics = selection.mosaics()
    grid = size // patch
    for r, (t, h, w) in enumerate(selection.positions_thw.tolist()):
        image, slot = divmod(r, grid * grid)
        row, col = divmod(slot, grid)
        cell = mosaics[image][row * patch : (row + 1) * patch, col * patch : (col + 1) * patch]
        assert np.array_equal(cell, canvases[t, h * patch : (h + 1) * patch, w * patch : (w + 1) * patch]), (t, h, w)


@pytest.mark.parametrize("planar", [True, False])
def test_frames_put_from_several_threads_at_once(planar, monkeypatch):
    """`select_patches` stores each canvas on whichever helper is idle: `put` runs on several threads at once (here
    4, switching every microsecond). Each frame lands in its own row, the blocks are made once each (two frames per
    block here), and the store equals one filled by one thread, for planes and for RGB."""
    count, height, width = 48, 36, 64
    rng = np.random.default_rng(7)
    sources = [_random_frame(rng, height * 2 + 2, width + 6) for _ in range(count)]
    scaler = RgbScaler()
    planes = [scaler.planes(source, height=height, width=width) for source in sources]
    expected = PlanarFrames(count, height=height, width=width, planar=planar)
    for i, frame in enumerate(planes):
        expected.put(i, frame)
    monkeypatch.setattr(planar_module, "BLOCK_BYTES", 2 * expected.frame_bytes)  # a new block every 2 frames
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(5):
            store = PlanarFrames(count, height=height, width=width, planar=planar)
            start = threading.Barrier(4)

            def fill(first: int, store: PlanarFrames = store, start: threading.Barrier = start) -> None:
                start.wait()
                for i in range(first, count, 4):
                    store.put(i, planes[i])

            threads = [threading.Thread(target=fill, args=(k,)) for k in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len({id(row.base) for row in store.data}) == count // 2
            for i in range(count):
                np.testing.assert_array_equal(store.rgb(i), expected.rgb(i), err_msg=f"frame {i}")
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.parametrize("planar", [True, False])
def test_touch_makes_every_block_before_any_put(planar, monkeypatch):
    """`touch` makes every block at once and writes a byte of each page (the idle energy thread's work before its
    first batch); the frames put afterwards land in those blocks, as in a store that was not touched."""
    count, height, width = 13, 36, 64
    rng = np.random.default_rng(2)
    planes = [RgbScaler().planes(_random_frame(rng, 74, 70), height=height, width=width) for _ in range(count)]
    monkeypatch.setattr(planar_module, "BLOCK_BYTES", 3 * (height + 1) * width * 3)  # blocks of a few frames
    expected = PlanarFrames(count, height=height, width=width, planar=planar)
    store = PlanarFrames(count, height=height, width=width, planar=planar)
    store.touch()
    blocks = dict(store._blocks)
    assert len(blocks) == -(-count // store._block_rows) > 1
    assert all(not block.reshape(-1)[:: planar_module.PAGE_BYTES].any() for block in blocks.values())
    for i in reversed(range(count)):
        store.put(i, planes[i])
        expected.put(i, planes[i])
    assert store._blocks.keys() == blocks.keys() and all(store._blocks[k] is v for k, v in blocks.items())
    for i in range(count):
        assert store.data[i].base is blocks[i - i % store._block_rows]
        np.testing.assert_array_equal(store.rgb(i), expected.rgb(i))
