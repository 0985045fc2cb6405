"""`select_patches` end to end on synthetic clips encoded with PyAV: behaviour, ground-truth recall, edge cases."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from fractions import Fraction

import av
import numpy as np
import pytest

import cv_reader.pipeline as pipeline
from cv_reader import EnergyConfig, VideoReadError, planar, read_letterboxed_frames, select_patches, valid_cell_mask
from cv_reader.decode import probe_video
from cv_reader.geometry import letterbox

from .synth import moving_cells, moving_object_clip, recall, smooth_texture, write_video


def _kept(selection) -> np.ndarray:
    mask = np.zeros(selection.scores.shape, bool)
    mask[tuple(selection.visidx_thw.T)] = True
    return mask


def test_moving_object_kept_static_background_not(moving_clip):
    selection = select_patches(moving_clip.path, budget=4 * 1296)
    truth = moving_cells(moving_clip.masks, selection.frame_ids)
    kept = _kept(selection)
    assert recall(selection.visidx_thw, truth) > 0.95
    # Far from the object (not within 2 cells of it in the frame), almost nothing is kept for t >= 1.
    near = truth.copy()
    for axis in (1, 2):
        for shift in (-2, -1, 1, 2):
            near |= np.roll(truth, shift, axis=axis)
    valid = valid_cell_mask(letterbox(144, 256, out_size=576), 16)
    far_kept = kept[1:] & ~near[1:] & valid[None]
    assert far_kept.sum() / max(kept[1:].sum(), 1) < 0.5
    assert selection.meta["signal"] == "codec_mv+mc_residual"


def test_outputs_first_frame_budget_and_formats(moving_clip):
    selection = select_patches(moving_clip.path)
    k = 8 * 1296
    assert selection.visidx_thw.shape == (k, 3) and selection.visidx_thw.dtype == np.int32
    assert selection.positions_thw.dtype == np.int32 and selection.frame_ids.dtype == np.int32
    assert selection.scores.shape == (64, 36, 36) and selection.scores.dtype == np.float32
    np.testing.assert_array_equal(selection.visidx_thw[:1296, 0], 0)
    np.testing.assert_array_equal(
        selection.visidx_thw[:1296, 1] * 36 + selection.visidx_thw[:1296, 2], np.arange(1296)
    )
    order = np.lexsort((selection.visidx_thw[:, 2], selection.visidx_thw[:, 1], selection.visidx_thw[:, 0]))
    np.testing.assert_array_equal(selection.positions_thw, selection.visidx_thw[order])
    assert len({tuple(r) for r in selection.visidx_thw}) == k
    np.testing.assert_array_equal(selection.frame_ids, np.linspace(0, 95, 64, dtype=int))
    mosaics = selection.mosaics()
    assert len(mosaics) == 8 and all(m.shape == (576, 576, 3) and m.dtype == np.uint8 for m in mosaics)
    np.testing.assert_array_equal(mosaics[0], selection.sampled_frames()[0])  # image 0 = frame t=0 in full
    vis = selection.visible_indices
    assert vis.dtype == np.int64 and np.all(np.diff(vis) > 0)
    again = select_patches(moving_clip.path)
    np.testing.assert_array_equal(again.visidx_thw, selection.visidx_thw)  # deterministic


def test_small_geometry_for_small_models(moving_clip):
    selection = select_patches(moving_clip.path, square_size=128, patch_size=16, num_images=4, num_frames=16)
    assert selection.visidx_thw.shape == (4 * 64, 3) and selection.scores.shape == (16, 8, 8)
    assert [m.shape for m in selection.mosaics()] == [(128, 128, 3)] * 4


GT_CASES = {
    "static_bg": {},
    "pan": {"pan": 1.5},
    "cut": {"cut_at": 48},
    "flat": {"flat_background": True},
    "no_bframes": {"bframes": 0},
}


@pytest.fixture(scope="module")
def gt_clips(clip_dir):
    return {
        name: moving_object_clip(clip_dir / f"gt_{name}.mp4", num_frames=112, seed=11, **kw)
        for name, kw in GT_CASES.items()
    }


def test_ground_truth_recall(gt_clips, capsys):
    """Recall of truly moving cells (t >= 1) at the production and a tight budget, ours vs the upstream recipe.

    Targets of issue 3: >= 0.95 at K=10368 and >= 0.65 at K=2592, and never below upstream. Known limit: under a
    camera pan the tight budget reaches about 0.7-0.8 (vectors into different reference frames disagree after
    median compensation), still well above the upstream recipe (0.47-0.55 on the same clips).
    """
    results = {}
    for name, clip in gt_clips.items():
        for recipe, cfg in (("ours", EnergyConfig()), ("upstream", EnergyConfig.upstream())):
            row = []
            for budget in (10368, 2592):
                selection = select_patches(clip.path, budget=budget, energy=cfg)
                row.append(
                    recall(
                        selection.visidx_thw,
                        moving_cells(clip.masks, selection.frame_ids),
                        frame_ids=selection.frame_ids,
                    )
                )
            results[name, recipe] = row
    with capsys.disabled():
        print(
            "\nground-truth recall [K=10368, K=2592]:",
            {f"{n}/{r}": [round(v, 3) for v in row] for (n, r), row in results.items()},
        )
    for name in gt_clips:
        full, tight = results[name, "ours"]
        up_full, up_tight = results[name, "upstream"]
        assert full >= 0.95, (name, full)
        assert tight >= 0.65, (name, tight)
        assert full >= up_full - 0.01 and tight >= up_tight - 0.01, (name, results[name, "ours"], up_full, up_tight)
    mean_tight = np.mean([results[n, "ours"][1] for n in gt_clips])
    assert mean_tight >= 0.75


def test_work_factor_16_from_1440p_keeps_the_moving_object(clip_dir):
    """From 1440p the analysis runs at 1/16 resolution, the motion map on the work grid (one vector per work pixel):
    the same cells as at 1/8 (a motion map left on the 8-px grid but placed as a 16-px one scored the wrong cells:
    correlation 0.72, tight-budget recall 0.92)."""
    clip = moving_object_clip(
        clip_dir / "pan_1440p.mp4", num_frames=40, seed=11, height=1440, width=2560, obj=240, speed=30, pan=15
    )
    runs = {}
    for factor in (None, 8):
        runs[factor] = [
            select_patches(clip.path, num_frames=16, num_images=4, budget=k, work_factor=factor, keep_pixels=False)
            for k in (2592, 1800)
        ]
    assert runs[None][0].meta["work_factor"] == 16 and runs[8][0].meta["work_factor"] == 8
    for selection in runs[None]:
        truth = moving_cells(clip.masks, selection.frame_ids)
        assert recall(selection.visidx_thw, truth, frame_ids=selection.frame_ids) >= 0.98
    coarse, fine = runs[None][0].scores[1:].ravel(), runs[8][0].scores[1:].ravel()
    assert np.corrcoef(coarse, fine)[0, 1] > 0.95


def test_scene_cut_first_frame_after_cut(cut_clip):
    """The I-frame after a cut carries no vectors; the pixel-domain signal must still find the object there
    (the upstream recipe scores it with zero motion and texture only)."""
    got = {}
    for recipe, cfg in (("ours", EnergyConfig()), ("upstream", EnergyConfig.upstream())):
        selection = select_patches(cut_clip.path, budget=2592, energy=cfg)
        truth = moving_cells(cut_clip.masks, selection.frame_ids)
        after = [t for t, i in enumerate(selection.frame_ids) if i >= 48][:1]
        kept = _kept(selection)
        got[recipe] = sum(int((kept[t] & truth[t]).sum()) for t in after) / sum(int(truth[t].sum()) for t in after)
        if recipe == "ours":
            assert selection.meta["frame_signal"][after[0]] == "pixel_next"
    assert got["ours"] >= 0.5 and got["ours"] > got["upstream"], got


def test_cut_coded_as_p_frame_still_matches_the_next_frame(clip_dir):
    """x264 without scene-cut detection codes the cut as a P-frame of intra macroblocks: that frame must still wait
    for the next frame (block matching), while the mostly predicted P-frames go straight to the energy pass."""
    clip = moving_object_clip(
        clip_dir / "cut_p.mp4",
        num_frames=64,
        cut_at=32,
        seed=18,
        options={"x264-params": "bframes=0:keyint=250:scenecut=0:threads=1"},
    )
    selection = select_patches(clip.path, num_frames=64, budget=2592)
    signals = selection.meta["frame_signal"]
    assert signals[32] == "pixel_next", signals[30:35]
    assert signals[31] == signals[33] == "codec_mv"


def test_surely_inter_is_conservative():
    from cv_reader.pipeline import INTRA_HEAVY, surely_inter

    height, width = 64, 128  # 4 x 8 macroblocks
    centres = [(8 + 16 * (n % 8), 8 + 16 * (n // 8)) for n in range(32)]

    def records(count: int) -> np.ndarray:
        out = np.zeros(count, dtype=[("dst_x", "<i2"), ("dst_y", "<i2")])
        out["dst_x"], out["dst_y"] = np.array(centres[:count]).T if count else ([], [])
        return out

    assert surely_inter(records(32), height=height, width=width)
    assert surely_inter(records(20), height=height, width=width)  # 37.5 % intra
    assert not surely_inter(records(19), height=height, width=width)  # 40.6 %: within the margin of INTRA_HEAVY
    assert not surely_inter(records(0), height=height, width=width)
    doubled = np.concatenate([records(12), records(12)])  # several partitions of one macroblock count once
    assert not surely_inter(doubled, height=height, width=width)
    assert INTRA_HEAVY == 0.5


def test_camera_pan_is_compensated(pan_clip):
    """Median compensation: under a pan the background does not take the budget (better than upstream's recipe)."""
    truth = None
    got = {}
    for recipe, cfg in (("ours", EnergyConfig()), ("upstream", EnergyConfig.upstream())):
        selection = select_patches(pan_clip.path, budget=2592, energy=cfg)
        truth = moving_cells(pan_clip.masks, selection.frame_ids)
        got[recipe] = recall(selection.visidx_thw, truth, frame_ids=selection.frame_ids)
    assert got["ours"] >= 0.6 and got["ours"] > got["upstream"] + 0.1, got


def test_static_clip_spreads_without_crashing(static_clip):
    selection = select_patches(static_clip)
    assert selection.visidx_thw.shape == (10368, 3)
    assert float(selection.scores[1:].max()) < 64.0  # nothing moves: low energy everywhere (floors, spec 13.3)


def test_fewer_frames_than_slots(clip_dir):
    clip = moving_object_clip(clip_dir / "short.mp4", num_frames=20, seed=12)
    selection = select_patches(clip.path)
    np.testing.assert_array_equal(selection.frame_ids, np.linspace(0, 19, 64, dtype=int))
    assert selection.meta["num_distinct_frames"] == 20 and selection.meta["duplicate_t"] == 44
    # Duplicated slots rank after every distinct frame's cells: only 19 distinct t >= 1 can hold content first.
    dup = np.zeros(64, bool)
    dup[1:] = selection.frame_ids[1:] == selection.frame_ids[:-1]
    kept_t = selection.visidx_thw[1296:, 0]
    n_distinct_cells = 19 * 1296
    assert np.all(~dup[kept_t[: min(n_distinct_cells, len(kept_t))]])


def test_vfr_and_nonzero_start(clip_dir):
    rng = np.random.default_rng(13)
    bg = smooth_texture(rng, height=96, width=160)
    frames = []
    for i in range(40):
        f = bg.copy()
        f[30:54, 10 + 3 * i : 34 + 3 * i] = 255
        frames.append(f)
    tb = Fraction(1, 1000)
    pts = [5000 + int(1000 * (i / 30 + (i % 3) * 0.01)) for i in range(40)]  # irregular steps, start 5 s
    path = write_video(clip_dir / "vfr.mkv", frames, pts=pts, time_base=tb, bframes=0)
    selection = select_patches(path)
    assert selection.meta["num_packets"] == 40 and selection.meta["num_decoded_frames_read"] == 40
    np.testing.assert_array_equal(selection.frame_ids, np.linspace(0, 39, 64, dtype=int))


@pytest.mark.parametrize(("height", "width"), [(101, 67), (160, 90)])
def test_odd_and_portrait_sizes(clip_dir, height, width):
    # 4:4:4 so that x264 accepts odd sizes.
    clip = moving_object_clip(
        clip_dir / f"size_{height}x{width}.mp4",
        num_frames=30,
        height=height,
        width=width,
        obj=16,
        seed=14,
        pix_fmt="yuv444p",
    )
    selection = select_patches(clip.path, budget=4 * 1296)
    box = letterbox(height, width, out_size=576)
    assert selection.meta["pad_info"] == box.to_dict()
    valid = valid_cell_mask(box, 16)
    assert selection.meta["padding_picked"] == 0 and np.all(
        valid[selection.visidx_thw[1296:, 1], selection.visidx_thw[1296:, 2]]
    )
    assert (
        recall(selection.visidx_thw, moving_cells(clip.masks, selection.frame_ids), frame_ids=selection.frame_ids)
        > 0.8
    )


def test_rotation_metadata(clip_dir):
    """A 90-degree display matrix: geometry and pixels follow the displayed (rotated) frame."""
    frames = []
    for _ in range(12):
        f = np.zeros((64, 128, 3), np.uint8)
        f[:, :16] = 255  # white stripe on the left edge of the coded frame
        frames.append(f)
    path = write_video(clip_dir / "rot.mp4", frames, rotation=90)
    selection = select_patches(path, num_frames=8, num_images=2, budget=2 * 1296)
    if selection.meta["rotation"] == 0:
        pytest.skip("this FFmpeg build does not expose the display matrix on decoded frames")
    assert (selection.meta["H0"], selection.meta["W0"]) == (128, 64)  # displayed portrait
    first = selection.mosaics()[0].astype(int)
    assert first.sum() > 0
    box = letterbox(128, 64, out_size=576)
    content = first[box.pad_top : box.pad_top + box.Hn, box.pad_left : box.pad_left + box.Wn, 0]
    rows = content.mean(axis=1)
    # Counter-clockwise 90: the coded left edge becomes the bottom edge.
    assert rows[-20:].mean() > 200 and rows[:20].mean() < 50


def test_10bit_422_input(clip_dir):
    clip = moving_object_clip(
        clip_dir / "hi10_422.mkv", num_frames=30, seed=15, pix_fmt="yuv422p10le", options={"x264-params": "bframes=0"}
    )
    selection = select_patches(clip.path, budget=2592)
    assert selection.meta["pix_fmt"].startswith("yuv422p10")
    assert (
        recall(selection.visidx_thw, moving_cells(clip.masks, selection.frame_ids), frame_ids=selection.frame_ids)
        > 0.8
    )


@pytest.mark.parametrize(("codec", "suffix"), [("flv", ".flv"), ("msmpeg4", ".avi"), ("wmv2", ".asf")])
def test_older_codecs_use_their_motion_vectors(clip_dir, codec, suffix):
    """FLV1, MS-MPEG4 v3 and WMV2 export vectors under decoder names ("flv", "msmpeg4", "wmv2") other than their
    codec ids: they take the codec-vector path, not block matching."""
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not available in this PyAV build")
    clip = moving_object_clip(clip_dir / f"mv_{codec}{suffix}", num_frames=30, seed=17, codec=codec)
    selection = select_patches(clip.path, budget=2592)
    assert selection.meta["signal"] == "codec_mv+mc_residual"
    assert selection.meta["frame_signal_counts"].get("codec_mv", 0) >= 20
    assert (
        recall(selection.visidx_thw, moving_cells(clip.masks, selection.frame_ids), frame_ids=selection.frame_ids)
        >= 0.65
    )


@pytest.mark.parametrize("codec", ["libx265", "libvpx-vp9"])
def test_codec_without_motion_vectors_falls_back(clip_dir, codec):
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not available in this PyAV build")
    suffix = ".mkv"
    clip = moving_object_clip(clip_dir / f"nomv_{codec}{suffix}", num_frames=40, seed=16, codec=codec)
    selection = select_patches(clip.path, budget=2592)
    assert selection.meta["signal"] == "block_matching+mc_residual"
    assert set(selection.meta["frame_signal_counts"]) <= {"pixel_next", "pixel_prev"}
    assert (
        recall(selection.visidx_thw, moving_cells(clip.masks, selection.frame_ids), frame_ids=selection.frame_ids)
        >= 0.65
    )
    with pytest.raises(ValueError, match="exports no motion vectors"):
        select_patches(clip.path, motion_source="codec")


def test_mpeg4_uses_codec_vectors(clip_dir):
    clip = moving_object_clip(clip_dir / "mpeg4.avi", num_frames=40, seed=17, codec="mpeg4")
    selection = select_patches(clip.path, budget=2592)
    assert selection.meta["signal"] == "codec_mv+mc_residual"
    assert (
        recall(selection.visidx_thw, moving_cells(clip.masks, selection.frame_ids), frame_ids=selection.frame_ids)
        >= 0.65
    )


def test_pixel_motion_source_matches_on_h264(moving_clip):
    selection = select_patches(moving_clip.path, budget=2592, motion_source="pixel")
    assert selection.meta["signal"] == "block_matching+mc_residual"
    assert recall(selection.visidx_thw, moving_cells(moving_clip.masks, selection.frame_ids)) >= 0.65


def test_memory_does_not_grow_with_length(clip_dir):
    """Peak Python-side allocations (numpy arrays) for a 4x longer clip stay flat: only sampled frames are kept. The
    peak of one call moves with the helper threads' timing (which batches' temporaries overlap; 24.9-27.5 MB on the
    150-frame clip under load): the least of three calls per length is compared."""
    import tracemalloc

    peaks = {}
    for frames in (150, 600):
        clip = moving_object_clip(clip_dir / f"len_{frames}.mp4", num_frames=frames, seed=18)
        runs = []
        for _ in range(3):
            tracemalloc.start()
            selection = select_patches(clip.path)
            selection.mosaics()
            runs.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            assert len(selection.frames) == selection.meta["num_distinct_frames"] == 64
        peaks[frames] = min(runs)
    assert peaks[600] < 1.15 * peaks[150], peaks


def test_single_frame_video(clip_dir):
    frame = smooth_texture(np.random.default_rng(19), height=64, width=96)
    path = write_video(clip_dir / "one.mp4", [frame])
    selection = select_patches(path)
    assert selection.meta["num_packets"] == 1 and np.all(selection.frame_ids == 0)
    assert selection.meta["duplicate_t"] == 63 and selection.meta["duplicate_picked"] == 10368 - 1296
    np.testing.assert_array_equal(selection.mosaics()[0], selection.sampled_frames()[0])


def test_needed_frames_are_samples_and_next_frames():
    """The frame before a sample is not decoded for it (only the last sample's, its block-matching partner)."""
    assert pipeline.needed_frames([0, 10, 20]) == frozenset({0, 1, 10, 11, 19, 20, 21})
    assert pipeline.needed_frames([0]) == frozenset({0, 1})
    assert pipeline.needed_frames([]) == frozenset()


def test_only_reference_frames_and_needed_frames_are_decoded(reference_fixtures, monkeypatch):
    """On a real B-frame clip the decoder skips every non-reference frame that is neither sampled nor the frame
    after a sample that may need it: the frames decoded are the reference frames (found by a decode that skips all
    non-reference frames), the sampled frames and some of the frames after them, up to the last sampled frame. The
    frame after a sampled B-frame is not asked for (a B-frame reads it only as a reference candidate, and it is
    none); after an I-frame (block matching) it is. Block matching (`motion_source="pixel"`) pairs every sample
    with its next frame: every one of them is decoded."""
    video = reference_fixtures / "codec_demo" / "videos" / "ytb_XwB-dkS5BVM.mp4"
    info = probe_video(video)
    rank = {pts: index for index, pts in enumerate(info.display_pts)}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        kinds = {rank[f.pts]: av.video.frame.PictureType(f.pict_type).name for f in container.decode(stream)}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        references = {rank[frame.pts] for frame in container.decode(stream)}
    assert 0 < len(references) < info.num_frames  # the clip has non-reference frames to skip
    decoded = []
    original = pipeline.iter_indexed_frames

    def recording(*args, **kwargs):
        for index, frame in original(*args, **kwargs):
            decoded.append(index)
            yield index, frame

    monkeypatch.setattr(pipeline, "iter_indexed_frames", recording)
    selection = select_patches(video)
    sampled = set(selection.frame_ids.tolist())
    needed = pipeline.needed_frames(sorted(sampled))
    assert sampled <= set(decoded) <= references | needed
    asked = set(decoded) - references - sampled  # non-reference frames decoded as a sample's next frame
    not_asked = {i + 1 for i in sampled if i + 1 < info.num_frames} - references - sampled - set(decoded)
    assert len(not_asked) > 10, not_asked
    assert {kinds[i - 1] for i in not_asked} <= {"B", "P"}
    assert all(i + 1 in decoded for i in sampled if kinds[i] == "I" and i + 1 < info.num_frames)
    assert asked or all(kinds[i] != "I" for i in sampled)

    decoded.clear()
    select_patches(video, motion_source="pixel")
    assert sorted(decoded) == sorted(i for i in references | needed if i < info.num_frames)


@pytest.mark.parametrize("pyramid", [False, True])
def test_list1_candidates_of_b_frames_are_frames_decoded_before_them(
    pyramid, reference_fixtures, clip_dir, monkeypatch
):
    """A sampled B-frame is compared with later frames that can be its references: the next anchor (I/P) and a
    later frame decoded before it (a B-pyramid reference), never a frame decoded after it (which no frame
    decoded before it can reference). The demo clip has single non-reference B-frames and some pairs; x264's
    default B-pyramid makes the middle one of three B-frames a reference."""
    if pyramid:
        params = (
            "bframes=3:b-adapt=0:b-pyramid=normal:keyint=96:threads=1"  # always 3 B-frames, the middle one a reference
        )
        video = moving_object_clip(
            clip_dir / "pyramid.mp4", num_frames=192, seed=11, options={"x264-params": params}
        ).path
    else:
        video = reference_fixtures / "codec_demo" / "videos" / "ytb_XwB-dkS5BVM.mp4"
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        order = {packet.pts: n for n, packet in enumerate(container.demux(stream)) if packet.size}
    with av.open(str(video)) as container:
        kinds = {f.pts: av.video.frame.PictureType(f.pict_type).name for f in container.decode(video=0)}
    made, candidates = {}, {}
    work_luma, finish = pipeline._Session.work_luma, pipeline._Session.finish

    def recording_luma(self, frame):
        luma = work_luma(self, frame)
        made[id(luma)] = (frame.pts, luma)  # (kept alive: ids stay unique)
        return luma

    def recording_finish(self, samples):
        for sample in samples:
            pts = made[id(sample.luma)][0]
            candidates[pts] = [made[id(ref)][0] for ref in sample.next_refs if ref is not None]
        return finish(self, samples)

    monkeypatch.setattr(pipeline._Session, "work_luma", recording_luma)
    monkeypatch.setattr(pipeline._Session, "finish", recording_finish)
    select_patches(video)
    b_samples = {pts: later for pts, later in candidates.items() if kinds[pts] == "B" and later}
    assert len(b_samples) > 10
    for pts, later in b_samples.items():
        assert all(ref > pts for ref in later)
        assert all(kinds[ref] in ("I", "P") or order[ref] < order[pts] for ref in later), (pts, later)
    from_pyramid = [pts for pts, later in b_samples.items() if any(kinds[ref] == "B" for ref in later)]
    assert bool(from_pyramid) == pyramid  # B-pyramid references are candidates


def test_decode_order_record_stays_bounded():
    """The decode order the B-frame rule reads is kept for frames still to come out only: an hour of video does
    not grow it past its pruning size, and the order of recent frames is still known."""
    router = pipeline._Router(None, slots={}, submit=lambda sample: None)
    for index in range(20000):
        router.note_sent(index)
        router.shown = index - 3  # frames come out a few packets after they go in
    assert len(router.sent) <= 4097
    assert router.sent_before(19998, 19999) and not router.sent_before(19999, 19998)


def test_work_luma_of_large_frames_is_made_off_the_decoding_thread(moving_clip, monkeypatch):
    """From OFFLOAD_LUMA_PIXELS up, the box sums of the work-resolution luma run on the pixel thread, not on the
    thread that feeds the decoder (its critical path when the decoder runs on one core); below, on the decoding
    thread. The scores do not depend on where they run."""
    threads = []
    original = pipeline.box_downsample

    def recording(plane, factor):
        threads.append(threading.current_thread().name)
        return original(plane, factor)

    monkeypatch.setattr(pipeline, "box_downsample", recording)
    small = select_patches(moving_clip.path)  # 256x144: below the threshold
    assert threads and set(threads) == {"MainThread"}
    threads.clear()
    monkeypatch.setattr(pipeline, "OFFLOAD_LUMA_PIXELS", moving_clip.width * moving_clip.height)
    offloaded = select_patches(moving_clip.path)
    assert threads and all(name.startswith("cv_reader_pixels") for name in threads), set(threads)
    monkeypatch.setattr(pipeline, "ThreadPoolExecutor", _InlineExecutor)
    inline = select_patches(moving_clip.path)
    np.testing.assert_array_equal(offloaded.scores, small.scores)
    np.testing.assert_array_equal(inline.scores, small.scores)


def test_work_luma_that_needs_swscale_is_made_off_the_decoding_thread(tmp_path, monkeypatch):
    """Luma that is not read in place (here RGB) is converted by swscale, 0.3 ms per 360p frame: it goes to the
    pixel thread at any frame size, and every conversion runs there (one reformatter serves the stream)."""
    if "libx264rgb" not in av.codecs_available:
        pytest.skip("libx264rgb not in this PyAV build")
    rng = np.random.default_rng(3)
    frames = [np.roll(smooth_texture(rng, height=96, width=160), 2 * i, axis=1) for i in range(24)]
    video = write_video(tmp_path / "rgb.mkv", frames, codec="libx264rgb", pix_fmt="rgb24")
    threads = []
    original = pipeline.luma_samples

    def recording(frame, *, gray=None):
        threads.append((frame.format.name, threading.current_thread().name))
        return original(frame, gray=gray)

    monkeypatch.setattr(pipeline, "luma_samples", recording)
    selection = select_patches(video, num_frames=8, num_images=2, square_size=128)
    assert threads and {name for name, _ in threads} == {"gbrp"}  # (libx264rgb decodes to planar RGB)
    assert all(thread.startswith("cv_reader_pixels") for _, thread in threads), set(threads)
    monkeypatch.setattr(pipeline, "ThreadPoolExecutor", _InlineExecutor)
    np.testing.assert_array_equal(select_patches(video, num_frames=8, num_images=2, square_size=128).scores,
                                  selection.scores)  # fmt: skip


def test_10_bit_luma_is_read_in_place_on_the_8_bit_scale(tmp_path, monkeypatch):
    """10-bit luma is read in place, without swscale, on the decoding thread like 8-bit luma (small frames), as
    its samples / 4: the 10-bit encode of a clip scores like its 8-bit encode and keeps the moving object."""
    clip = moving_object_clip(tmp_path / "eight.mp4", num_frames=48, seed=5)
    frames = []
    with av.open(str(clip.path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    ten = write_video(tmp_path / "ten_bit.mp4", frames, pix_fmt="yuv420p10le")
    threads, scales = [], []
    original = pipeline.luma_samples

    def recording(frame, *, gray=None):
        luma, extra = original(frame, gray=gray)
        threads.append(threading.current_thread().name)
        scales.append((frame.format.name, str(luma.dtype), extra))
        return luma, extra

    monkeypatch.setattr(pipeline, "luma_samples", recording)
    monkeypatch.setattr(pipeline.VideoReformatter, "reformat", lambda *a, **k: pytest.fail("luma through swscale"))
    ten_bit = select_patches(ten, num_frames=16, num_images=4, keep_pixels=False)
    assert set(scales) == {("yuv420p10le", "uint16", 2)} and set(threads) == {"MainThread"}
    monkeypatch.undo()
    eight_bit = select_patches(clip.path, num_frames=16, num_images=4, keep_pixels=False)
    both = eight_bit.scores.ravel(), ten_bit.scores.ravel()
    assert np.corrcoef(*both)[0, 1] > 0.95
    kept = [set(map(tuple, s.positions_thw.tolist())) for s in (eight_bit, ten_bit)]
    assert len(kept[0] & kept[1]) > 0.8 * len(kept[0])
    truth = moving_cells(clip.masks, ten_bit.frame_ids)
    assert recall(ten_bit.visidx_thw, truth) > 0.9 and recall(eight_bit.visidx_thw, truth) > 0.9


class _InlineExecutor:
    """Runs each job at submission: the pipeline without helper threads."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, *args, **kwargs) -> None:
        pass


def test_canvases_are_kept_in_large_blocks(moving_clip):
    """The 64 sampled frames are kept as 4:2:0 planes (half the bytes of RGB) in a few blocks of at least
    `planar.BLOCK_BYTES` (one array per frame faulted its pages in anew for every video), each row holding its own
    frame, whose RGB is the stage-2 reader's canvas of the same frame."""
    selection = select_patches(moving_clip.path)
    store = selection.frames
    blocks = {id(f.base): f.base for f in store.data}
    assert len(store) == 64 and len(blocks) <= 16
    assert all(block.nbytes >= planar.BLOCK_BYTES for block in blocks.values())
    box = selection.meta["pad_info"]
    top, left, height, width = box["pad_top"], box["pad_left"], box["Hn"], box["Wn"]
    assert store.frame_bytes * 64 <= height * width * 3 * 64 // 2 + 64 * (height + width)
    canvases, _ = read_letterboxed_frames(moving_clip.path, selection.frame_ids)
    for row, content in enumerate(store):
        np.testing.assert_array_equal(content, canvases[row, top : top + height, left : left + width])


def test_cells_are_chosen_on_the_energy_thread_after_the_last_batch(moving_clip, monkeypatch):
    """The top-K runs on the energy thread once its last batch is done, beside the decoding thread storing the
    canvases that still wait (then it stores its share of them), not on the serial tail after them; the choice is
    the same as made inline, and its errors still reach the caller as VideoReadError."""
    events = []
    finish, choose, store = pipeline._Session.finish, pipeline._choose, pipeline._Session._store_canvas

    def recording_finish(self, samples):
        finish(self, samples)
        events.append(("batch", threading.current_thread().name))

    def recording_choose(*args, **kwargs):
        events.append(("choose", threading.current_thread().name))
        return choose(*args, **kwargs)

    def recording_store(self, index, frame):
        events.append(("canvas", threading.current_thread().name))
        store(self, index, frame)

    monkeypatch.setattr(pipeline._Session, "finish", recording_finish)
    monkeypatch.setattr(pipeline, "_choose", recording_choose)
    monkeypatch.setattr(pipeline._Session, "_store_canvas", recording_store)
    monkeypatch.setattr(pipeline, "process_cores", lambda: 2)
    selection = select_patches(moving_clip.path)
    kinds = [kind for kind, _ in events]
    assert kinds.count("choose") == 1 and kinds.index("choose") > max(i for i, k in enumerate(kinds) if k == "batch")
    chooser = dict(events)["choose"]
    assert chooser.startswith("cv_reader_energy"), events
    assert all(name == chooser for kind, name in events if kind == "batch"), events
    with monkeypatch.context() as inline:
        inline.setattr(pipeline, "ThreadPoolExecutor", _InlineExecutor)
        alone = select_patches(moving_clip.path)
    np.testing.assert_array_equal(selection.visidx_thw, alone.visidx_thw)
    np.testing.assert_array_equal(selection.scores, alone.scores)
    with pytest.raises(VideoReadError) as info:  # the padding excluded: too few content cells for the budget
        select_patches(moving_clip.path, num_images=64, padding_policy="exclude")
    assert info.value.reason == "too_few_cells"


def test_canvases_of_small_frames_wait_for_an_idle_helper(moving_clip, monkeypatch):
    """Below IDLE_CANVAS_PIXELS a sampled frame's canvas is not made on the pixel thread as it comes (that thread
    and the energy thread sharing the second core held the decoding thread back) but by the energy thread when no
    batch is queued (what is left at the end, by it and the decoding thread); at most MAX_WAITING_CANVASES
    decoded frames (and MAX_WAITING_CANVAS_BYTES) wait, past that the pixel thread takes them; before its first batch
    the energy thread stores them as they come. On one core, or with a core for each of the three threads, the pixel
    thread stores them all, as before. The pixels are the same wherever they are made."""
    stores, in_loop, order, touches = [], [False], [], []
    store, loop, energy = pipeline._Session._store_canvas, pipeline._decode_loop, pipeline._Session.finish
    touch = planar.PlanarFrames.touch

    def recording_touch(self):
        touches.append(threading.current_thread().name)
        order.append("touch")
        touch(self)

    def recording_store(self, index, frame):
        stores.append((threading.current_thread().name, in_loop[0], len(self.waiting_canvases)))
        order.append("canvas")
        store(self, index, frame)

    def recording_energy(self, samples):
        order.append("batch")
        energy(self, samples)

    def recording_loop(*args, **kwargs):
        in_loop[0] = True
        try:
            return loop(*args, **kwargs)
        finally:
            in_loop[0] = False

    monkeypatch.setattr(pipeline._Session, "_store_canvas", recording_store)
    monkeypatch.setattr(pipeline, "_decode_loop", recording_loop)
    monkeypatch.setattr(pipeline._Session, "finish", recording_energy)
    monkeypatch.setattr(planar.PlanarFrames, "touch", recording_touch)

    def run() -> tuple[list, pipeline.CodecSelection]:
        stores.clear()
        order.clear()
        touches.clear()
        selection = select_patches(moving_clip.path)
        return list(stores), selection

    monkeypatch.setattr(pipeline, "process_cores", lambda: 2)
    monkeypatch.setattr(pipeline, "MAX_WAITING_CANVASES", 64)
    waited, selection = run()  # 256x144: below the threshold
    assert len(waited) == 64
    # During the decoding loop only the energy thread stores them (between its batches), after it that thread or
    # the decoding thread.
    assert all(name.startswith("cv_reader_energy") for name, during, _ in waited if during), waited
    assert all(name.startswith("cv_reader_energy") or name == "MainThread" for name, _, _ in waited), waited
    # First of all the energy thread writes the store's pages (`PlanarFrames.touch`), once.
    assert len(touches) == 1 and touches[0].startswith("cv_reader_energy"), touches
    with monkeypatch.context() as inline:
        # Without helper threads each batch's energy runs as it is submitted, and the canvases that wait are stored
        # right after it: during the loop, never more than a few batches behind.
        inline.setattr(pipeline, "ThreadPoolExecutor", _InlineExecutor)
        between, _ = run()
    assert sum(during for _, during, _ in between) >= 48 and max(waiting for _, _, waiting in between) < 32, between
    # Before the first batch the idle energy thread stores them as they come (inline: at once), not after it.
    assert order.index("batch") >= 8 and order[:8] == ["touch"] + ["canvas"] * 7, order[:12]
    monkeypatch.setattr(pipeline, "MAX_WAITING_CANVASES", 2)
    capped, capped_selection = run()
    assert len(capped) == 64 and max(waiting for _, _, waiting in capped) <= 2
    assert any(name.startswith("cv_reader_pixels") and during for name, during, _ in capped), capped
    # Bounded in bytes too (10-bit or 4:4:4 frames take 2-4x the bytes): 3 frames of this 256x144 4:2:0 clip.
    monkeypatch.setattr(pipeline, "MAX_WAITING_CANVASES", 64)
    monkeypatch.setattr(pipeline, "MAX_WAITING_CANVAS_BYTES", 3 * 256 * 144 * 3 // 2 + 4096)
    by_bytes, _ = run()
    assert len(by_bytes) == 64 and max(waiting for _, _, waiting in by_bytes) <= 3, by_bytes
    assert any(name.startswith("cv_reader_pixels") and during for name, during, _ in by_bytes), by_bytes
    for cores in (1, 8):  # one core for every thread, or a core each: the pixel thread
        monkeypatch.setattr(pipeline, "process_cores", lambda cores=cores: cores)
        many_cores, many_cores_selection = run()
        assert all(name.startswith("cv_reader_pixels") for name, _, _ in many_cores), (cores, many_cores)
        assert not touches  # (the pixel thread stores each canvas as it comes: no idle time to fill)
    monkeypatch.setattr(pipeline, "process_cores", lambda: 2)
    monkeypatch.setattr(pipeline, "IDLE_CANVAS_PIXELS", 0)
    piped, piped_selection = run()
    assert all(name.startswith("cv_reader_pixels") for name, _, _ in piped), piped
    for other in (capped_selection, many_cores_selection, piped_selection):
        np.testing.assert_array_equal(other.sampled_frames(), selection.sampled_frames())
        for a, b in zip(other.mosaics(), selection.mosaics(), strict=True):
            np.testing.assert_array_equal(a, b)
