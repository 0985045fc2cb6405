"""Every frame geometry selects or raises `VideoReadError` naming the file and the reason: thin, tall, tiny,
portrait, odd and huge frames, and a stream whose resolution changes midway."""

from __future__ import annotations

import av
import numpy as np
import pytest

from cv_reader import VideoReadError, read_letterboxed_frames, select_patches
from cv_reader.motion_estimation import frame_motion
from cv_reader.saliency import normalise
from llava.model.llava_ov.video_inputs import read_uniform_frames

from .synth import smooth_texture, write_video


def _panning_clip(path, *, height: int, width: int, num_frames: int):
    """A texture panning 3 px per frame (motion everywhere, so every analysis path runs)."""
    texture = smooth_texture(np.random.default_rng(height * 7 + width), height=height, width=width + 3 * num_frames)
    return write_video(path, [texture[:, 3 * i : 3 * i + width] for i in range(num_frames)])


@pytest.mark.parametrize(
    ("height", "width", "num_frames"),
    [
        (64, 4096, 6),  # thin: the letterbox keeps 9 px of height, less than one 16-px cell
        (8, 4096, 6),  # thinner than the 1/16 work factor of its long side: one work row at 1/8
        (2, 4096, 6),  # two pixels high: no work row at 1/8 or 1/16 (failed as analysis_error)
        (4096, 64, 6),  # tall
        (16, 16, 12),  # tiny: 4x4 motion blocks, one canvas cell is a third of a pixel
        (8, 8, 8),  # smaller than the block-matching block
        (2, 2, 6),  # smaller than one motion-vector block: empty vector grid
        (320, 96, 12),  # portrait
        (50, 70, 10),  # odd sizes (not multiples of the 4-px motion grid)
    ],
)
@pytest.mark.filterwarnings("error::RuntimeWarning")  # no 0/0 or empty-slice numpy warnings on any geometry
def test_every_geometry_selects(tmp_path, height, width, num_frames):
    path = _panning_clip(tmp_path / f"clip_{height}x{width}.mp4", height=height, width=width, num_frames=num_frames)
    selection = select_patches(path, num_frames=16, num_images=2)
    assert selection.visidx_thw.shape == (2 * 1296, 3)
    assert len({tuple(r) for r in selection.visidx_thw.tolist()}) == 2 * 1296
    assert selection.meta["H0"] == height and selection.meta["W0"] == width
    mosaics = selection.mosaics()
    assert len(mosaics) == 2 and mosaics[0].shape == (576, 576, 3)
    if min(height, width) * 576 / max(height, width) < 16:
        assert selection.meta["S_valid"] == 0 and selection.meta["padding_picked"] > 0


def test_huge_frames(tmp_path):
    path = _panning_clip(tmp_path / "uhd.mp4", height=2160, width=3840, num_frames=2)
    selection = select_patches(path, num_frames=8, num_images=2)
    assert selection.meta["work_factor"] == 16 and selection.visidx_thw.shape == (2 * 1296, 3)


def test_thin_frames_with_padding_excluded_name_the_file(tmp_path):
    path = _panning_clip(tmp_path / "thin.mp4", height=64, width=4096, num_frames=4)
    with pytest.raises(VideoReadError) as info:
        select_patches(path, num_frames=8, num_images=2, padding_policy="exclude")
    assert info.value.reason == "too_few_cells" and str(path) in str(info.value)


def test_block_matching_never_runs_out_of_blocks():
    for shape in ((64, 4096), (4096, 64), (3, 3), (2, 200)):
        cur = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
        motion, residual, step = frame_motion(cur, np.roll(cur, 1, axis=1))
        assert motion.shape[:2] == residual.shape and residual.size > 0 and step >= 1
    assert normalise(np.zeros((0, 5), np.float32), pct=95, floor=1.0).shape == (0, 5)


def test_resolution_change_midstream_is_scaled_to_the_first_size(tmp_path, caplog):
    """Two TS segments of different sizes back to back (a concatenated or adaptive-streaming capture): frames of the
    second size are scaled to the first, their vectors (another grid) are not used, and the selection covers both."""
    parts = []
    for number, (height, width) in enumerate(((64, 96), (96, 128))):
        mp4 = _panning_clip(tmp_path / f"part{number}.mp4", height=height, width=width, num_frames=10)
        ts = tmp_path / f"part{number}.ts"
        with av.open(str(mp4)) as src, av.open(str(ts), "w", format="mpegts") as dst:
            stream_in = src.streams.video[0]
            stream_out = dst.add_stream_from_template(stream_in)
            for packet in src.demux(stream_in):
                if packet.dts is not None:
                    packet.stream = stream_out
                    dst.mux(packet)
        parts.append(ts.read_bytes())
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(parts))
    with caplog.at_level("WARNING", logger="cv_reader.decode"):
        selection = select_patches(joined, num_frames=16, num_images=2)
    assert "frame 10 is 128x96, the stream started at 96x64" in caplog.text and str(joined) in caplog.text
    assert selection.meta["missing_frames"] == [] and selection.meta["num_packets"] == 20
    second = [t for t, index in enumerate(selection.frame_ids.tolist()) if index >= 10]
    assert selection.scores[second].sum() > 0  # the second segment has energy (it pans too)
    assert [image.shape for image in selection.mosaics()] == [(576, 576, 3)] * 2
    canvases, frame_of_t = read_letterboxed_frames(joined, selection.frame_ids)  # stage 2 reads it the same way
    np.testing.assert_array_equal(canvases[frame_of_t], selection.sampled_frames())
    frames = read_uniform_frames(joined, num_frames=4)
    assert [frame.shape for frame in frames] == [(64, 96, 3)] * 4
