"""The pure parts: letterbox geometry, top-K selection, packing, MV rasterisation, residual helpers."""

from __future__ import annotations

import numpy as np
import pytest

from cv_reader import letterbox, pack_mosaics, positions_from_visidx, rasterize_motion_vectors, select_topk
from cv_reader.geometry import cell_sum_matrices, valid_cell_mask, valid_cell_ranges
from cv_reader.motion_estimation import estimate_motion
from cv_reader.motion_vectors import motion_field
from cv_reader.residual import box_downsample, warp_bilinear


def test_letterbox_demo_portrait():
    # Spec 5: 360x640 portrait -> scale 0.9, Hn 576, Wn 324, pad_left 126, content columns 8..27.
    box = letterbox(640, 360, out_size=576)
    assert (box.Hn, box.Wn, box.pad_top, box.pad_left, box.pad_right) == (576, 324, 0, 126, 126)
    assert valid_cell_ranges(box, 16) == (0, 36, 8, 28)
    assert valid_cell_mask(box, 16).sum() == 720


def test_letterbox_odd_sizes_use_python_round():
    box = letterbox(101, 203, out_size=576)
    assert box.Wn == 576 and box.Hn == round(101 * 576 / 203)
    assert box.pad_top + box.Hn + box.pad_bottom == 576


def test_area_cell_matrices_integrate_constant_map():
    box = letterbox(90, 160, out_size=576)
    a_h, a_w = cell_sum_matrices(box, (45, 80), step_px=2.0, patch_size=16)
    cells = a_h @ np.ones((45, 80), np.float32) @ a_w.T
    valid = valid_cell_mask(box, 16)
    np.testing.assert_allclose(cells[valid], 256.0, rtol=1e-4)
    assert cells.sum() == pytest.approx(box.Hn * box.Wn, rel=1e-4)


def test_select_topk_first_frame_budget_order_and_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(8, 6, 6)).astype(np.float32)  # many ties
    selection = select_topk(scores, 36 * 3)
    assert selection.visidx_thw.dtype == np.int32 and selection.visidx_thw.shape == (108, 3)
    # t = 0 whole, in raster order.
    np.testing.assert_array_equal(selection.visidx_thw[:36], [(0, h, w) for h in range(6) for w in range(6)])
    rest = selection.visidx_thw[36:]
    flat = rest[:, 0] * 36 + rest[:, 1] * 6 + rest[:, 2]
    s = scores.reshape(-1)[flat]
    # Descending score, ties by ascending flat index.
    assert np.all((s[:-1] > s[1:]) | ((s[:-1] == s[1:]) & (flat[:-1] < flat[1:])))
    assert len({tuple(r) for r in selection.visidx_thw}) == 108
    np.testing.assert_array_equal(selection.positions_thw, positions_from_visidx(selection.visidx_thw))
    order = np.lexsort((selection.visidx_thw[:, 2], selection.visidx_thw[:, 1], selection.visidx_thw[:, 0]))
    np.testing.assert_array_equal(selection.positions_thw, selection.visidx_thw[order])
    again = select_topk(scores.copy(), 36 * 3)
    np.testing.assert_array_equal(again.visidx_thw, selection.visidx_thw)


def _topk_by_definition(scores, budget, *, valid, dup, keep_first, exclude_padding):
    """Spec 6 written out: t=0 whole (optional), then one lexsort of every other cell by (tier, -score, flat)."""
    t_len, grid, _ = scores.shape
    cells = grid * grid
    tier = np.where(dup[:, None, None], 2, np.where(valid, 0, 1)[None]).reshape(-1)
    first = cells if keep_first else 0
    candidates = np.arange(first, t_len * cells)
    if exclude_padding:
        candidates = candidates[valid.reshape(-1)[candidates % cells]]
    order = np.lexsort((candidates, -scores.reshape(-1)[candidates], tier[candidates]))
    flat = np.concatenate([np.arange(first), candidates[order[: budget - first]]])
    t, rest = np.divmod(flat, cells)
    return np.stack([t, *np.divmod(rest, grid)], axis=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(40))
def test_select_topk_equals_the_full_sort(seed, dtype):
    """The selection partitions instead of sorting every cell; it must pick and order exactly as the full sort.
    float32 scores (the pipeline's) take packed integer keys (`selection._packed_smallest`): signed scores, -0.0
    equal to 0.0, subnormals and the largest floats among them."""
    rng = np.random.default_rng(seed)
    t_len, grid = int(rng.integers(1, 40)), int(rng.integers(1, 9))
    signed = [-0.0, 0.0, 1.0, -1.0, 1e-40, -1e-40, 3e38, -3e38]
    scores = [
        rng.random,
        lambda size: rng.integers(0, 3, size).astype(float),
        np.zeros,
        lambda size: rng.choice(signed, size),
    ][seed % 4]((t_len, grid, grid)).astype(dtype)
    valid = rng.random((grid, grid)) > 0.3
    dup = rng.random(t_len) > 0.7
    for keep_first in (False, True):
        for exclude_padding in (False, True):
            first = grid * grid if keep_first else 0
            room = (
                first + int(valid.sum()) * (t_len - 1 if keep_first else t_len) if exclude_padding else t_len * grid**2
            )
            if room < max(first, 1):
                continue
            budget = int(rng.integers(max(first, 1), room + 1))
            got = select_topk(
                scores,
                budget,
                valid_mask=valid,
                duplicate_t=dup,
                keep_first_full_frame=keep_first,
                exclude_padding=exclude_padding,
            )
            want = _topk_by_definition(
                scores, budget, valid=valid, dup=dup, keep_first=keep_first, exclude_padding=exclude_padding
            )
            np.testing.assert_array_equal(got.visidx_thw, want)
            np.testing.assert_array_equal(got.positions_thw, want[np.lexsort((want[:, 2], want[:, 1], want[:, 0]))])


def test_select_topk_padding_and_duplicates_rank_last():
    scores = np.ones((4, 4, 4), np.float32)
    valid = np.zeros((4, 4), bool)
    valid[:, 1:3] = True
    dup = np.array([False, False, True, False])
    selection = select_topk(scores, 16 + 3 * 8, valid_mask=valid, duplicate_t=dup)
    rest = selection.visidx_thw[16:]
    # Distinct frames t=1, 3 hold 2 x 8 content cells; then padding cells of those frames; the duplicate t=2 last.
    assert np.all(valid[rest[:16, 1], rest[:16, 2]]) and set(rest[:16, 0]) == {1, 3}
    assert not np.any(valid[rest[16:, 1], rest[16:, 2]]) and not np.any(rest[:, 0] == 2)
    assert selection.num_padding_picked == 8
    # Short of candidates: padding cells next, then the duplicate frame, recorded in the counts.
    full = select_topk(scores, 4 * 16, valid_mask=valid, duplicate_t=dup)
    assert full.num_padding_picked == 16 and full.num_duplicate_frame_picked == 16


def test_select_topk_rejects_bad_budget():
    with pytest.raises(ValueError, match="smaller than one full frame"):
        select_topk(np.zeros((2, 4, 4)), 10)
    with pytest.raises(ValueError, match="budget"):
        select_topk(np.zeros((2, 4, 4)), 33)


def test_pack_mosaics_layout():
    t_len, size, patch = 3, 32, 16  # grid 2, 4 cells per image
    frames = np.stack([np.full((size, size, 3), 10 * (t + 1), np.uint8) for t in range(t_len)])
    for t in range(t_len):  # mark each cell with its (h, w)
        for h in range(2):
            for w in range(2):
                frames[t, h * 16 : h * 16 + 16, w * 16 : w * 16 + 16, 1] = 10 * h + w
    positions = np.array([(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 1, 1), (2, 0, 1)], np.int32)
    mosaics = pack_mosaics(frames, np.arange(t_len), positions_thw=positions, num_images=2, patch_size=patch)
    assert len(mosaics) == 2 and mosaics[0].shape == (32, 32, 3)
    np.testing.assert_array_equal(mosaics[0], frames[0])  # image 0 = frame t=0 in full
    assert mosaics[1][0, 0, 0] == 20 and mosaics[1][0, 0, 1] == 11  # row 4 -> image 1 cell (0, 0) = (1, 1, 1)
    assert mosaics[1][0, 16, 0] == 30 and mosaics[1][0, 16, 1] == 1  # row 5 -> cell (0, 1) = (2, 0, 1)
    assert mosaics[1][16:].max() == 0  # unused cells stay black


def _records(rows):
    dtype = np.dtype(
        [
            ("source", "<i4"),
            ("w", "u1"),
            ("h", "u1"),
            ("src_x", "<i2"),
            ("src_y", "<i2"),
            ("dst_x", "<i2"),
            ("dst_y", "<i2"),
            ("flags", "<u8"),
            ("motion_x", "<i4"),
            ("motion_y", "<i4"),
            ("motion_scale", "<u2"),
        ]
    )
    return np.array(rows, dtype=dtype)


def test_rasterize_motion_vectors_spec_grid():
    # Spec 2.3: dst = block centre, rows [dst_y//4 - h//8, dst_y//4 + h//8), src - dst in integer pixels.
    recs = _records(
        [
            (-1, 16, 16, 8 + 3, 8 - 2, 8, 8, 0, 13, -9, 4),  # 16x16 at (0, 0), L0 (3, -2)
            (1, 8, 8, 20 - 1, 4 + 5, 20, 4, 0, -5, 21, 4),  # 8x8 at x 16..24, y 0..8, L1 (-1, 5)
            (-1, 16, 8, 30, 60, 24, 28, 0, 24, 128, 4),  # 16x8 crossing the right edge: clipped
        ]
    )
    grid = rasterize_motion_vectors(recs, height=32, width=32)
    assert grid.shape == (8, 8, 4) and grid.dtype == np.int32
    np.testing.assert_array_equal(grid[0:4, 0:4, 0], 3)
    np.testing.assert_array_equal(grid[0:4, 0:4, 1], -2)
    np.testing.assert_array_equal(grid[0:2, 4:6, 2:4], np.broadcast_to([-1, 5], (2, 2, 2)))
    np.testing.assert_array_equal(grid[6:8, 4:8, 0:2], np.broadcast_to([6, 32], (2, 4, 2)))
    assert grid[4:6].sum() == 0  # no record there: intra / uncoded
    field, has = motion_field(recs, height=32, width=32)
    np.testing.assert_allclose(field[0, 0, :2], [13 / 4, -9 / 4])
    assert has[0, 0, 0] and not has[0, 0, 1] and has[0, 4, 1] and not has[4, 0].any()


def test_box_downsample_and_warp():
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 255, (20, 30)).astype(np.float32)
    np.testing.assert_allclose(box_downsample(img, 2)[1, 2], img[2:4, 4:6].mean(), rtol=1e-5)
    shifted = warp_bilinear(img, dx=np.full(img.shape, 2.0, np.float32), dy=np.full(img.shape, 1.0, np.float32))
    np.testing.assert_allclose(shifted[:-1, :-2], img[1:, 2:], rtol=1e-5)
    half = warp_bilinear(img, dx=np.full(img.shape, 0.5, np.float32), dy=np.zeros(img.shape, np.float32))
    np.testing.assert_allclose(half[:, :-1], 0.5 * (img[:, :-1] + img[:, 1:]), rtol=1e-5)


def test_block_matching_recovers_shift():
    rng = np.random.default_rng(2)
    ref = box_downsample(rng.uniform(0, 255, (96, 128)).astype(np.float32), 2)
    cur = np.roll(ref, shift=(2, -3), axis=(0, 1))  # content moved down 2, left 3
    motion, residual = estimate_motion(cur, ref, block=4, search=5)
    inner = motion[2:-2, 2:-2]
    assert np.all(inner[..., 0] == 3) and np.all(inner[..., 1] == -2)
    assert residual[2:-2, 2:-2].max() < 1e-3


def test_positions_are_the_lexsorted_rows():
    """`positions_from_visidx` (a sorted mixed-radix key split back into rows) gives upstream's
    `visidx[lexsort((w, h, t))]`, with repeated rows, either integer type, and negative rows (the lexsort itself)."""
    rng = np.random.default_rng(7)
    for size in (1, 2, 37, 4000):
        for dtype in (np.int32, np.int64):
            rows = np.stack([rng.integers(0, 64, size), rng.integers(0, 36, size), rng.integers(0, 36, size)], 1)
            rows = rows.astype(dtype)
            if size > 2:
                rows[size // 2] = rows[0]  # a repeated row
            want = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]
            got = positions_from_visidx(rows)
            assert got.dtype == np.int32 and np.array_equal(got, want)
    rows = np.array([[1, -1, 3], [0, 2, 2], [0, -5, 9]])
    assert np.array_equal(positions_from_visidx(rows), rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))])


def test_kept_cells_order_by_key_then_flat_index():
    """The order of the kept cells (`selection._key_then_flat`) is `lexsort((flat, key))`: ties of equal keys, -0.0
    and 0.0 among them, by ascending flat index; a single cell and none."""
    from cv_reader.selection import _key_then_flat

    rng = np.random.default_rng(11)
    for trial in range(60):
        size = int(rng.integers(0, 3000))
        key = rng.choice([0.0, -0.0, 1.5, -2.0], size) if trial % 2 else rng.normal(size=size)
        flat = np.sort(rng.choice(10**6, size, replace=False))
        assert np.array_equal(_key_then_flat(key, flat), np.lexsort((flat, key))), trial
