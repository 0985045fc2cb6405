"""The energies are computed for several sampled frames at once: batching must not change a single score."""

from __future__ import annotations

import numpy as np
import pytest

import cv_reader.pipeline as pipeline
from cv_reader import EnergyConfig, select_patches
from cv_reader.motion_estimation import estimate_motion
from cv_reader.residual import box_downsample
from cv_reader.saliency import _masked_median, median, percentile_rows

RECIPES = {
    "clean": EnergyConfig(),
    "upstream": EnergyConfig.upstream(),
    # masked medians over coded blocks, extra camera modes, the high-pass proxy for intra blocks
    "coded_median": EnergyConfig(median_over_coded=True, camera_modes=2, intra_residual="highpass"),
}


def _select(path, monkeypatch, *, batch: int, **kwargs):
    monkeypatch.setattr(pipeline, "BATCH", batch)
    return select_patches(path, **kwargs)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("clip", ["moving_clip", "cut_clip"])
def test_batches_give_the_scores_of_single_frames(request, monkeypatch, clip, recipe):
    path = request.getfixturevalue(clip).path
    alone = _select(path, monkeypatch, batch=1, energy=RECIPES[recipe])
    batched = _select(path, monkeypatch, batch=8, energy=RECIPES[recipe])
    np.testing.assert_array_equal(batched.scores, alone.scores)
    np.testing.assert_array_equal(batched.visidx_thw, alone.visidx_thw)
    assert batched.meta["frame_signal"] == alone.meta["frame_signal"]
    # both code paths ran: codec vectors (with B-frames) and intra frames
    signals = set(alone.meta["frame_signal"])
    assert {"codec_mv", "codec_mv_bi"} <= signals, signals
    for a, b in zip(batched.mosaics(), alone.mosaics(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_batches_mixing_vector_grids(moving_clip, monkeypatch):
    """Frames of one batch on different vector grids (4 and 8 px) are scored per grid, as alone."""
    mixed = lambda records: [4 if len(r) % 2 else 8 for r in records]  # noqa: E731 (any fixed per-frame rule)
    monkeypatch.setattr(pipeline, "field_blocks", mixed)
    alone = _select(moving_clip.path, monkeypatch, batch=1)
    batched = _select(moving_clip.path, monkeypatch, batch=8)
    np.testing.assert_array_equal(batched.scores, alone.scores)


def test_block_matching_batches_give_the_scores_of_single_frames(moving_clip, monkeypatch):
    alone = _select(moving_clip.path, monkeypatch, batch=1, motion_source="pixel")
    batched = _select(moving_clip.path, monkeypatch, batch=8, motion_source="pixel")
    assert set(alone.meta["frame_signal"]) == {"pixel_next", "pixel_prev"}
    np.testing.assert_array_equal(batched.scores, alone.scores)


def test_batched_block_matching_equals_one_frame_at_a_time():
    rng = np.random.default_rng(0)
    # dyadic grey levels (box-averaged 8-bit luma), shifted content plus noise, flat corners (ties)
    cur = rng.integers(0, 255 * 16, (5, 30, 44)).astype(np.float32) / 16
    ref = np.roll(cur, (1, -2), axis=(1, 2)) + rng.integers(-16, 16, cur.shape).astype(np.float32) / 16
    cur[:, :9, :9] = ref[:, :9, :9] = 7.0
    motion, residual = estimate_motion(cur, ref, block=4, search=3)
    for n in range(len(cur)):
        one_motion, one_residual = estimate_motion(cur[n], ref[n], block=4, search=3)
        np.testing.assert_array_equal(motion[n], one_motion)
        np.testing.assert_array_equal(residual[n], one_residual)
    assert np.mean(motion[:, 3:-3, 3:-3] == (-2, 1)) > 0.9  # the shift is found: (dx, dy) from cur into ref


def test_masked_median_is_numpy_median():
    rng = np.random.default_rng(1)
    values = np.trunc(rng.normal(0, 3, (6, 7, 9))).astype(np.float32)
    valid = rng.random((6, 7, 9)) < 0.5
    valid[0] = False  # no valid block: 0
    valid[1] = True
    valid[2] = False
    valid[2, 0, :4] = True  # an even count
    valid[3] = False
    valid[3, 1, :3] = True  # an odd count
    got = _masked_median(values, valid)[:, 0, 0]
    for n in range(len(values)):
        want = np.median(values[n][valid[n]]) if valid[n].any() else 0.0
        assert got[n] == np.float32(want), (n, got[n], want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("shape", [(5, 8), (5, 9), (1, 1), (7, 2)])
def test_median_is_numpy_median(shape, dtype):
    values = np.trunc(np.random.default_rng(3).normal(0, 3, shape) * 1.37).astype(dtype)
    for axis in (0, 1):
        want, got = np.median(values, axis=axis), median(values, axis=axis)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_percentile_rows_is_numpy_percentile(dtype):
    rng = np.random.default_rng(4)
    for size in (1, 2, 7, 100, 257):
        rows = (rng.gamma(0.5, 3.0, (3, size)) * 10.0 ** rng.integers(-3, 4)).astype(dtype)
        for pct in (0.0, 1.0, 37.5, 50.0, 90.0, 95.0, 99.9, 100.0, float(rng.uniform(0, 100))):
            want, got = np.percentile(rows, pct, axis=1), percentile_rows(rows, pct)
            assert got.dtype == want.dtype, (size, pct)
            np.testing.assert_array_equal(got, want, err_msg=f"size={size} pct={pct}")


def test_selection_does_not_import_numpy_ma(moving_clip):
    """np.median imports numpy.ma on its first call (20-40 ms on the first video of a process); nothing in the
    pipeline may call it."""
    import subprocess
    import sys

    code = (
        "import sys; from cv_reader import select_patches; "
        f"select_patches({str(moving_clip.path)!r}).mosaics(); print('numpy.ma' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("factor", [1, 2, 4, 8])  # the work factors select_patches uses
def test_box_downsample_is_the_block_mean(factor):
    planes = np.random.default_rng(2).integers(0, 256, (3, 37, 53), dtype=np.uint8)
    h, w = 37 // factor, 53 // factor
    want = planes[:, : h * factor, : w * factor].reshape(3, h, factor, w, factor).astype(np.float64).mean(axis=(2, 4))
    np.testing.assert_array_equal(box_downsample(planes, factor), want.astype(np.float32))
    np.testing.assert_array_equal(box_downsample(planes[1], factor), want[1].astype(np.float32))


@pytest.mark.parametrize("size", [1, 2, 7, 8, 100, 3601])
def test_medians_and_percentiles_are_numpys(size):
    """`median` and `percentile_rows` (one single-kth partition each, not numpy's two-kth one) give np.median's and
    np.partition's order statistics exactly: rows with runs of equal values (vectors at rest, truncated to whole
    pixels), signed zeros, sorted runs, odd and even lengths."""
    rng = np.random.default_rng(size)
    rows = np.trunc(rng.normal(0, 2, size=(6, size))).astype(np.float32)
    rows[1] = 0.0
    rows[2] = np.sort(rows[2])
    rows[3] = rows[3][::-1].copy()
    rows[4] = rng.uniform(0, 255, size).astype(np.float32)
    assert np.array_equal(median(rows, axis=1), np.median(rows, axis=1))
    for pct in (95.0, 50.0, 0.0, 100.0, 99.9):
        virtual = (size - 1) * pct / 100
        low = min(int(np.floor(virtual)), size - 1)
        part = np.partition(rows, sorted({low, min(low + 1, size - 1)}), axis=1)
        got = percentile_rows(rows, pct)
        assert got.dtype == np.float32
        if virtual == low:  # on an order statistic: exactly it
            assert np.array_equal(got, part[:, low])
        np.testing.assert_allclose(got, np.percentile(rows, pct, axis=1), rtol=1e-6, atol=1e-6)
