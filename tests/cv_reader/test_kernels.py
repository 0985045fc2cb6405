"""The compiled loops (`cv_reader._kernels`) give exactly the numbers of their numpy versions, on random inputs with
the awkward cases (sub-pixel and out-of-frame vectors, partial block grids, ties, padded rows) and end to end."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import av
import numpy as np
import pytest

from cv_reader import kernels, motion_vectors, select_patches
from cv_reader.decode import motion_records
from cv_reader.motion_estimation import estimate_motion
from cv_reader.motion_vectors import motion_fields
from cv_reader.packing import pack_cells, pack_mosaics
from cv_reader.residual import box_downsample, mc_residual
from cv_reader.saliency import _SparseRows, median, percentile_rows

from .synth import moving_object_clip


@pytest.fixture
def numpy_loops(monkeypatch):
    """A callable that runs a function with the compiled loops turned off."""

    def run(fn, *args, **kwargs):
        with monkeypatch.context() as patch:
            patch.setattr(kernels, "enabled", False)
            assert not kernels.compiled()
            return fn(*args, **kwargs)

    return run


def _compiler() -> str | None:
    return shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) or shutil.which("cc")


def _require_compiled():
    """An install (`pip install -e .`, which scripts/run_tests.sh runs) builds the extension wherever a C compiler
    exists: a missing build there is a failure (it would silently run the slow loops)."""
    if _compiler() is None and not kernels.compiled():
        pytest.skip("no C compiler here: the package runs its numpy loops, nothing compiled to compare")
    assert kernels.compiled(), "cv_reader._kernels is missing or stale: run `pip install -e .` again"


def test_the_kernels_are_built():
    _require_compiled()


@pytest.mark.parametrize(
    ("factor", "columns"), [(f, c) for f in (2, 3, 4, 8, 16, 32, 300) for c in (9, 37) if f * c < 10_000]
)
def test_block_means_equal_numpy(factor, columns, numpy_loops, simd):
    """Uint8 planes: 37 output columns take the AVX2 rows of factors 2, 4 and 8 (16 or 8 outputs at a time) and
    the scalar sums of the last few; 9 only the scalar ones at factor 2."""
    rng = np.random.default_rng(factor)
    # A decoded frame's plane: rows padded to a line size, width and height not multiples of the factor.
    width = columns * factor + factor - 1
    stored = rng.integers(0, 256, size=(6 * factor + factor - 1, width + 32), dtype=np.uint8)
    plane = stored[:, :width]
    compiled = box_downsample(plane, factor)
    assert compiled.dtype == np.float32 and compiled.shape == (6, columns)
    assert np.array_equal(compiled, numpy_loops(box_downsample, plane, factor))
    white = np.full((factor * 2, factor * columns), 255, np.uint8)  # the largest sums
    assert np.array_equal(box_downsample(white, factor), np.full((2, columns), 255, np.float32))


@pytest.mark.parametrize("factor", [2, 3, 4, 8, 16])
def test_block_means_of_16_bit_samples_equal_numpy(factor, numpy_loops):
    """10/12/16-bit luma read in place (`decode.luma_samples`): uint16 samples in padded rows."""
    _require_compiled()
    rng = np.random.default_rng(factor)
    stored = rng.integers(0, 1024, size=(5 * factor + 1, 7 * factor + 1 + 16), dtype=np.uint16)
    plane = stored[:, : 7 * factor + 1]
    compiled = box_downsample(plane, factor)
    assert compiled.dtype == np.float32 and compiled.shape == (5, 7)
    assert np.array_equal(compiled, numpy_loops(box_downsample, plane, factor))
    np.testing.assert_allclose(compiled[1, 2], plane[factor : 2 * factor, 2 * factor : 3 * factor].mean(), rtol=1e-6)
    top = np.full((factor * 2, factor * 2), 65535, np.uint16)  # the largest sums: still exact in float32
    assert np.array_equal(box_downsample(top, factor), np.full((2, 2), 65535, np.float32))


def _mc_case(rng: np.random.Generator, *, count: int, hw: int, ww: int, block: int, factor: int, grid_extra: int):
    """Random work luma, candidate lists of every shape (none, one, two, shared planes), quarter-pel vectors that
    reach past the frame, masks with intra blocks, and a vector grid that is cropped or edge-extended."""
    cur = rng.uniform(0, 255, size=(count, hw, ww)).astype(np.float32)
    planes = [rng.uniform(0, 255, size=(hw, ww)).astype(np.float32) for _ in range(4)]
    mv_block = block * factor
    rows, cols = max(1, hw // block + grid_extra), max(1, ww // block + grid_extra)
    field = (rng.integers(-48, 49, size=(count, rows, cols, 4)) / 4).astype(np.float32) * factor
    field[:, :, : cols // 3] *= 8  # far outside the frame: clamped samples
    has = rng.random((count, rows, cols, 2)) < 0.8
    prev = [[planes[n % 4], planes[(n + 1) % 4]][: n % 3] for n in range(count)]
    nxt = [[planes[(n + 2) % 4]] if n % 2 else [] for n in range(count)]
    return cur, field, has, prev, nxt, mv_block


def _cpu_has_avx2() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return platform.machine() == "x86_64" and cpuinfo.exists() and " avx2" in cpuinfo.read_text(errors="replace")


@pytest.fixture(params=["avx2", "scalar"])
def simd(request):
    """Runs a test with the AVX2 code of the kernels on and off (both must give the numpy numbers); restores it."""
    _require_compiled()
    want = request.param == "avx2"
    kernels._kernels.set_simd(want)
    on = kernels._kernels.set_simd(want)  # (returns the setting in effect)
    if want and _cpu_has_avx2():
        assert on, "a CPU with AVX2, and the kernels do not take their AVX2 code"
    yield on
    kernels._kernels.set_simd(True)


def test_cv_reader_simd_0_turns_the_avx2_code_off():
    _require_compiled()
    code = "from cv_reader import kernels; print(kernels._kernels.set_simd(False))"  # (prints the setting it found)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CV_READER_SIMD": "0"}
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"
    env["CV_READER_SIMD"] = "1"
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == str(_cpu_has_avx2())


@pytest.mark.parametrize(
    ("block", "factor", "grid_extra"),
    [(1, 4, 0), (2, 4, 0), (2, 4, -1), (1, 8, 2), (4, 1, 0), (2, 2, -2), (3, 4, 1), (8, 2, -1)],
)
@pytest.mark.parametrize("intra", ["difference", "highpass"])
def test_motion_compensated_residual_equals_numpy(block, factor, grid_extra, intra, numpy_loops, simd):
    rng = np.random.default_rng(block * 100 + factor * 10 + grid_extra)
    cur, field, has, prev, nxt, mv_block = _mc_case(
        rng, count=7, hw=23, ww=37, block=block, factor=factor, grid_extra=grid_extra
    )
    args = dict(has=has, factor=factor, prev=prev, nxt=nxt, mv_block=mv_block, intra=intra)
    compiled = mc_residual(cur, field, **args)
    expected = numpy_loops(mc_residual, cur, field, **args)
    assert np.isfinite(expected).all() and np.array_equal(compiled, expected)
    # Without the "difference" fallback: +inf where no direction predicts, and the kernel says so.
    raw, left = kernels.mc_error(cur, field, has=has, block=block, factor=factor, prev=prev, nxt=nxt, difference=False)
    assert left and np.isinf(raw).any() and np.isfinite(raw).any()
    filled, left = kernels.mc_error(
        cur, field, has=has, block=block, factor=factor, prev=prev, nxt=nxt, difference=True
    )
    assert left == any(not p for p in prev)  # only frames without a list-0 candidate keep +inf


@pytest.mark.parametrize(
    ("shape", "block", "search"),
    [((5, 26, 45), 4, 5), ((3, 17, 29), 3, 2), ((2, 9, 13), 1, 1), ((4, 3, 40), 2, 4), ((2, 1, 1), 1, 3)],
)
def test_block_matching_equals_numpy(shape, block, search, numpy_loops, simd):
    rng = np.random.default_rng(shape[1])
    # Box means of uint8 by 7 (not dyadic: float sums depend on their order), a shifted copy with noise, and rows
    # copied unchanged so that the zero shift ties with others.
    cur = box_downsample(rng.integers(0, 256, size=(shape[0], shape[1] * 7, shape[2] * 7), dtype=np.uint8), 7)
    ref = np.roll(cur, 2, axis=2) + rng.normal(0, 2, cur.shape).astype(np.float32)
    ref[:, : shape[1] // 2] = cur[:, : shape[1] // 2]
    for bias in (0.5, 0.3):
        compiled = estimate_motion(cur, ref, block=block, search=search, zero_bias=bias)
        expected = numpy_loops(estimate_motion, cur, ref, block=block, search=search, zero_bias=bias)
        for got, want in zip(compiled, expected, strict=True):
            assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("motion_source", ["auto", "pixel"])
def test_selection_is_the_same_with_and_without_the_kernels(tmp_path, motion_source, numpy_loops):
    _require_compiled()
    clip = moving_object_clip(tmp_path / "clip.mp4", num_frames=40, height=144, width=256, pan=1.0, cut_at=20)
    kwargs = dict(num_frames=16, num_images=2, square_size=128, motion_source=motion_source)
    compiled = select_patches(clip.path, **kwargs)
    expected = numpy_loops(select_patches, clip.path, **kwargs)
    assert np.array_equal(compiled.scores, expected.scores)
    assert np.array_equal(compiled.positions_thw, expected.positions_thw)
    for got, want in zip(compiled.mosaics(), expected.mosaics(), strict=True):
        assert np.array_equal(got, want)


def _records_of(clip_path) -> list[np.ndarray]:
    with av.open(str(clip_path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        found = [motion_records(frame) for frame in container.decode(stream)]
    return [r for r in found if r is not None and len(r)]


@pytest.mark.parametrize("block", [4, 8])
def test_motion_fields_equal_numpy(tmp_path, block, numpy_loops):
    _require_compiled()
    clip = moving_object_clip(tmp_path / "clip.mp4", num_frames=24, height=72, width=120, pan=1.5)
    records = _records_of(clip.path)
    assert len(records) >= 8
    for start in range(0, len(records), 8):
        batch = records[start : start + 8]
        compiled = motion_fields(batch, height=72, width=120, block=block)
        expected = numpy_loops(motion_fields, batch, height=72, width=120, block=block)
        for got, want in zip(compiled, expected, strict=True):
            assert got.dtype == want.dtype and np.array_equal(got, want)
    # Random partitions across the border (centres outside the frame, sizes 4-64) and overlapping ones (no codec
    # writes those: the numpy order of writes decides them, so the compiled loop hands the batch back).
    rng = np.random.default_rng(block)
    fake = np.zeros(300, dtype=records[0].dtype)
    fake["source"] = rng.choice([-1, 1], fake.size)
    fake["w"], fake["h"] = rng.choice([4, 8, 16, 64], fake.size), rng.choice([4, 8, 16, 64], fake.size)
    fake["dst_x"], fake["dst_y"] = rng.integers(-40, 160, fake.size), rng.integers(-40, 110, fake.size)
    fake["motion_x"], fake["motion_y"] = rng.integers(-99, 99, fake.size), rng.integers(-99, 99, fake.size)
    fake["motion_scale"] = 4
    batch = [fake[:100], fake[100:200], fake[200:]]
    compiled = motion_fields(batch, height=72, width=120, block=block)
    expected = numpy_loops(motion_fields, batch, height=72, width=120, block=block)
    for got, want in zip(compiled, expected, strict=True):
        assert np.array_equal(got, want)
    handed_back = kernels.motion_fields(batch, rows=72 // block, cols=120 // block, block=block)
    assert handed_back is None
    # Tiles that do not overlap, shifted up and left past the border (negative centres: floor division), both
    # directions, scales 0 (read as 1), 1, 2 and 4: done by the compiled loop itself.
    ys, xs = np.meshgrid(np.arange(-4, 80, 16), np.arange(-4, 128, 16), indexing="ij")
    tiles = np.zeros(2 * ys.size, dtype=records[0].dtype)
    tiles["source"] = np.repeat([-1, 1], ys.size)
    tiles["w"] = tiles["h"] = 16
    tiles["dst_y"], tiles["dst_x"] = np.tile(ys.reshape(-1), 2), np.tile(xs.reshape(-1), 2)
    tiles["motion_x"], tiles["motion_y"] = rng.integers(-999, 999, tiles.size), rng.integers(-999, 999, tiles.size)
    tiles["motion_scale"] = rng.choice([0, 1, 2, 4], tiles.size)
    batch = [tiles, None, tiles[::-1].copy()]
    compiled = kernels.motion_fields(batch, rows=72 // block, cols=120 // block, block=block)
    assert compiled is not None
    expected = numpy_loops(motion_fields, batch, height=72, width=120, block=block)
    for got, want in zip(compiled, expected, strict=True):
        assert np.array_equal(got, want)
    assert compiled[1][0].all() and not compiled[1][1].any()


def test_field_blocks_equal_numpy(tmp_path, numpy_loops):
    """The 8-px grid where every partition of a frame is 8x8 or larger on the 8-px grid (a frame without records
    too), else 4 px: from the records' bytes as from their fields; records of another layout (built by hand, packed
    fields) go through numpy alone."""
    _require_compiled()
    clip = moving_object_clip(tmp_path / "clip.mp4", num_frames=24, height=72, width=120, pan=1.5)
    records = _records_of(clip.path)
    rng = np.random.default_rng(3)
    odd = records[0].copy()
    odd["w"][rng.integers(0, len(odd))] = 4  # a 4x8 partition
    shifted = records[1].copy()
    shifted["dst_x"][0] += 4  # a partition off the 8-px grid
    negative = records[2].copy()
    negative["dst_y"][0] = -12  # (its corner at -16: on the grid)
    batch = [records[3], None, odd, shifted, records[4][:0], negative]
    compiled = motion_vectors.field_blocks(batch)
    assert compiled == numpy_loops(motion_vectors.field_blocks, batch)
    assert compiled[1] == compiled[4] == 8 and compiled[2] == compiled[3] == 4
    packed = np.dtype([(name, records[0].dtype.fields[name][0]) for name in records[0].dtype.names])
    assert packed.itemsize < 40 and kernels.field_blocks([odd.astype(packed)]) is None
    assert kernels.motion_fields([odd.astype(packed)], rows=9, cols=15, block=8) is None
    assert motion_vectors.field_blocks([odd.astype(packed), records[3].astype(packed)]) == [4, compiled[0]]


def test_frame_kind_equals_numpy(tmp_path, numpy_loops):
    """`pipeline.frame_kind` from the records' bytes (`_kernels.mv_cover`) as from their fields: real P- and
    B-frame records, centres off the frame on every side (clamped to the edge macroblocks, negative ones
    included), a single record, none, and a later source in one record only."""
    from cv_reader.pipeline import frame_kind

    _require_compiled()
    clip = moving_object_clip(tmp_path / "clip.mp4", num_frames=24, height=72, width=120, pan=1.5)
    records = _records_of(clip.path)
    assert any((r["source"] > 0).any() for r in records) and any((r["source"] < 0).all() for r in records)
    rng = np.random.default_rng(5)
    wild = records[1].copy()
    wild["dst_x"] = rng.integers(-40, 200, len(wild))
    wild["dst_y"] = rng.integers(-40, 120, len(wild))
    wild["source"] = -1
    one_later = wild.copy()
    one_later["source"][len(wild) // 2] = 1
    cases = records + [wild, one_later, wild[:1], wild[:0]]
    for height, width in ((72, 120), (64, 100), (16, 16), (200, 300)):
        mb_rows, mb_cols = -(-height // 16), -(-width // 16)
        for case in cases:
            got = frame_kind(case, height=height, width=width, margin=0.0)
            assert got == numpy_loops(frame_kind, case, height=height, width=width, margin=0.0)
            rows = np.clip(case["dst_y"].astype(np.int64) // 16, 0, mb_rows - 1).tolist()
            cols = np.clip(case["dst_x"].astype(np.int64) // 16, 0, mb_cols - 1).tolist()
            later = bool((case["source"] > 0).any())
            want = (len(set(zip(rows, cols, strict=True))), later)
            assert kernels.macroblock_cover(case, mb_rows=mb_rows, mb_cols=mb_cols) == want
    packed = np.dtype([(name, wild.dtype.fields[name][0]) for name in wild.dtype.names])
    assert kernels.macroblock_cover(wild.astype(packed), mb_rows=5, mb_cols=8) is None


@pytest.mark.parametrize(("cells", "samples"), [(36, 90), (5, 60), (3, 700), (2, 1100)])
def test_cell_sums_equal_numpy(cells, samples, numpy_loops):
    """The area-integration products of the cell scores (numpy's pairwise summation order reproduced: segments of
    1-7, 8-128 and more than 128 samples per cell)."""
    _require_compiled()
    rng = np.random.default_rng(samples)
    mat = np.zeros((cells, samples), dtype=np.float32)
    edges = np.sort(rng.choice(np.arange(1, samples), cells - 1, replace=False))
    first = np.searchsorted(edges, np.arange(samples), side="right")  # the cell each sample starts in
    mat[first, np.arange(samples)] = rng.uniform(0.1, 4, samples)
    spill = rng.random(samples) < 0.3  # some samples also overlap the next cell (two slots)
    spill &= first + 1 < cells
    mat[first[spill] + 1, np.flatnonzero(spill)] = rng.uniform(0.1, 4, spill.sum())
    values = rng.uniform(0, 1, size=(samples, 33)).astype(np.float32)
    rows = _SparseRows(mat)
    compiled = rows.left_multiply(values)
    expected = numpy_loops(rows.left_multiply, values)
    assert np.array_equal(compiled, expected)
    np.testing.assert_allclose(compiled, mat @ values, rtol=1e-5)


@pytest.mark.parametrize(("content", "pads"), [((61, 96), (17, 0)), ((96, 45), (0, 25)), ((96, 96), (0, 0))])
def test_mosaics_equal_numpy(content, pads, numpy_loops):
    """Kept cells copied into the mosaics: content rectangles at odd pads (cells half in the black padding), whole
    canvases, several frames, the last mosaic part empty."""
    _require_compiled()
    rng = np.random.default_rng(content[0] + pads[0])
    frames = [rng.integers(0, 256, size=(*content, 3), dtype=np.uint8) for _ in range(5)]
    grid, kept = 96 // 16, 60
    flat = np.sort(rng.choice(8 * grid * grid, kept, replace=False))
    positions = np.stack([flat // (grid * grid), (flat // grid) % grid, flat % grid], axis=1)
    frame_of_t = np.array([0, 1, 1, 2, 3, 4, 4, 0])
    kwargs = dict(positions_thw=positions, num_images=3, patch_size=16, square_size=96, pad_top=pads[0],
                  pad_left=pads[1])  # fmt: skip
    compiled = pack_mosaics(frames, frame_of_t, **kwargs)
    expected = numpy_loops(pack_mosaics, frames, frame_of_t, **kwargs)
    assert len(compiled) == 3
    for got, want in zip(compiled, expected, strict=True):
        assert np.array_equal(got, want)
    assert compiled[1].any() and not compiled[2].any()  # 60 cells: 36 in mosaic 0, 24 in mosaic 1


def test_plane_cells_to_chosen_slots_equal_numpy(numpy_loops):
    """One-channel planes (the 4:2:0 store's luma and chroma) copied to chosen slots, half-padding cells included,
    into mosaics whose rows are padded (the planes of a decoded-frame buffer)."""
    _require_compiled()
    rng = np.random.default_rng(7)
    frames = [rng.integers(0, 256, size=(23, 40, 1), dtype=np.uint8) for _ in range(3)]
    kept, grid = 30, 48 // 8
    src, rows, cols = rng.integers(0, 3, kept), rng.integers(0, grid, kept), rng.integers(0, grid, kept)
    slots = rng.permutation(2 * grid * grid)[:kept]
    results = []
    for run in (lambda f, *a, **k: f(*a, **k), numpy_loops):
        buffer = np.zeros((2 * 48, 64), dtype=np.uint8)  # rows of 64 bytes, 48 used
        mosaics = buffer[:, :48]
        mosaics.shape = (2, 48, 48, 1)
        run(pack_cells, frames, src, cell_rows=rows, cell_cols=cols, slots=slots, patch_size=8, pad_top=13,
            pad_left=4, mosaics=mosaics)  # fmt: skip
        assert not buffer[:, 48:].any()
        results.append(np.array(mosaics))
    assert np.array_equal(*results) and results[0].any()


@pytest.mark.parametrize("extra", [(2, 0), (0, 2), (2, 2), (1, 1)])
def test_grown_blocks_equal_numpy(extra, numpy_loops):
    """Blocks grown by `extra` rows and columns past the cells (an odd pad's 4:2:0 blocks completed), into a grid of
    blocks with padded rows; blocks that reach past the content and into the padding on every side."""
    _require_compiled()
    rng = np.random.default_rng(sum(extra))
    frames = [rng.integers(0, 256, size=(23, 40, 1), dtype=np.uint8) for _ in range(3)]
    kept, grid, patch = 40, 6, 8
    src, rows, cols = rng.integers(0, 3, kept), rng.integers(0, grid, kept), rng.integers(0, grid, kept)
    slots = rng.permutation(2 * grid * grid)[:kept]
    height, width = grid * (patch + extra[0]), grid * (patch + extra[1])
    results = []
    for run in (lambda f, *a, **k: f(*a, **k), numpy_loops):
        buffer = np.zeros((2 * height, width + 8), dtype=np.uint8)
        buffer[:, width:] = 7  # the padding of the rows: left as it is
        mosaics = buffer[:, :width]
        mosaics.shape = (2, height, width, 1)
        run(pack_cells, frames, src, cell_rows=rows, cell_cols=cols, slots=slots, patch_size=patch, pad_top=13,
            pad_left=3, mosaics=mosaics, extra=extra)  # fmt: skip
        assert (buffer[:, width:] == 7).all()
        results.append(np.array(mosaics))
    assert np.array_equal(*results)
    # Each block is the canvas rectangle of its cell grown down and right (content at the pads, 0 outside it).
    canvas = np.full((grid * patch + 2, grid * patch + 2), -1)
    for r in range(kept):
        canvas[:] = -1
        canvas[13 : 13 + 23, 3 : 3 + 40] = frames[src[r]][..., 0]
        block = canvas[rows[r] * patch : rows[r] * patch + patch + extra[0],
                       cols[r] * patch : cols[r] * patch + patch + extra[1]]  # fmt: skip
        image, slot = divmod(slots[r], grid * grid)
        got = results[0][image, (slot // grid) * (patch + extra[0]) :, (slot % grid) * (patch + extra[1]) :, 0]
        got = got[: patch + extra[0], : patch + extra[1]]
        assert np.array_equal(np.where(block < 0, 0, block), got), r


@pytest.mark.parametrize("grow", [(1, 0), (0, 1), (1, 1), (2, 1)])
def test_cells_cut_in_place_from_grown_blocks(grow):
    """`cut_cells` leaves at the start of the buffer the middle cells of each block, in order: what slicing the
    blocks gives, though every cell moves within the buffer it reads (rows with padding bytes)."""
    _require_compiled()
    images, grid, patch, channels = 3, 5, 6, 3
    block_h, block_w = patch + 2 * grow[0], patch + 2 * grow[1]
    pitch = grid * block_w * channels + 5
    rng = np.random.default_rng(grow[0] * 3 + grow[1])
    buffer = rng.integers(0, 256, size=images * grid * block_h * pitch, dtype=np.uint8)
    rows = buffer.reshape(images * grid * block_h, pitch)[:, : grid * block_w * channels]
    blocks = rows.reshape(images, grid, block_h, grid, block_w, channels)
    expected = blocks[:, :, grow[0] : grow[0] + patch, :, grow[1] : grow[1] + patch].reshape(
        images, grid * patch, grid, patch, channels
    )
    expected = np.array(expected).reshape(images, grid * patch, grid * patch, channels)
    assert kernels.cut_cells(buffer, pitch=pitch, images=images, grid=grid, patch_size=patch, grow=grow,
                             channels=channels)  # fmt: skip
    assert np.array_equal(buffer[: expected.size].reshape(expected.shape), expected)
    short = buffer[: buffer.size - (pitch - grid * block_w * channels) - 1]  # the last row's last pixel cut
    with pytest.raises(ValueError, match="smaller"):
        kernels.cut_cells(short, pitch=pitch, images=images, grid=grid, patch_size=patch, grow=grow,
                          channels=channels)  # fmt: skip


def test_environment_turns_the_kernels_off():
    _require_compiled()
    code = "from cv_reader import kernels; print(kernels.compiled())"
    package = str(Path(kernels.__file__).resolve().parents[1])
    for value, expected in (("0", "False"), ("1", "True")):
        env = {**os.environ, "CV_READER_KERNELS": value, "PYTHONPATH": package}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert out.stdout.strip() == expected


@pytest.mark.parametrize("size", [1, 2, 3, 8, 100, 14400])
def test_order_statistics_equal_numpy(size, numpy_loops):
    """The radix selection behind medians and percentiles: runs of equal values (half zeros, a few hundred levels,
    as residual maps are), negative values, sorted and reversed rows, every position of two adjacent ranks."""
    _require_compiled()
    rng = np.random.default_rng(size)
    rows = np.round(rng.normal(0, 4, size=(6, size)) * 16).astype(np.float32) / 16
    rows[0, ::2] = 0.0
    rows[1] = np.abs(rows[1])
    rows[2] = np.sort(rows[2])
    rows[3] = np.sort(rows[3])[::-1]
    rows[4] = 7.0
    ordered = np.sort(rows, axis=1)
    for low in sorted({0, size // 2, max(size - 2, 0), size - 1, (size * 95) // 100}):
        for high in {low, min(low + 1, size - 1)}:
            got_low, got_high = kernels.order_stats(rows, low, high)
            assert np.array_equal(got_low, ordered[:, low]) and np.array_equal(got_high, ordered[:, high])
    for pct in (95.0, 50.0, 0.0, 100.0):
        assert np.array_equal(percentile_rows(rows, pct), numpy_loops(percentile_rows, rows, pct))
    assert np.array_equal(median(rows, axis=1), numpy_loops(median, rows, axis=1))


def test_order_statistics_at_the_edges_of_a_bucket():
    """The first radix pass buckets values by sign, exponent and two mantissa bits: two adjacent ranks in different
    buckets (the high-th found by reading the whole row again), a bucket of one repeated value (no further pass)
    with the next rank in it or past it, and a bucket of two close values."""
    _require_compiled()
    rows = np.array(
        [
            [0.0] * 6 + [5.0] * 4,  # one value up to rank 5, the next bucket from rank 6
            [1.0] * 3 + [1.1] * 3 + [2.0] * 4,  # 1.0 and 1.1 share a bucket, 2.0 is the next one
            [-3.0] * 5 + [-1.0] * 5,  # negative values: reversed keys
            [2.5] * 10,
        ],
        dtype=np.float32,
    )
    rng = np.random.default_rng(0)
    ordered = np.sort(rows, axis=1)
    for low in range(rows.shape[1]):
        for high in {low, min(low + 1, rows.shape[1] - 1)}:
            for order in (np.arange(rows.shape[1]), rng.permutation(rows.shape[1])):
                got_low, got_high = kernels.order_stats(rows[:, order], low, high)
                assert np.array_equal(got_low, ordered[:, low]) and np.array_equal(got_high, ordered[:, high])
