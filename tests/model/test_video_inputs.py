"""Uniform frames are read through cv_reader: its frame count (packets) and its frame indices (the codec path's)."""

from __future__ import annotations

import av
import numpy as np
import pytest

import cv_reader
from llava.model.llava_ov.video_inputs import read_uniform_frames
from tests.data.helpers import write_video


def test_uniform_frames_are_cv_readers_sampled_frames(tmp_path):
    path = write_video(tmp_path / "clip.mp4", num_frames=20)
    frames = read_uniform_frames(path, num_frames=4)
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    indices = cv_reader.sample_frame_ids(cv_reader.probe_video(path).num_frames, 4).tolist()
    assert indices == [0, 6, 12, 19]
    assert len(frames) == 4
    for frame, index in zip(frames, indices, strict=True):
        np.testing.assert_array_equal(frame, decoded[index])


def test_uniform_frames_demux_the_file_once(tmp_path, monkeypatch):
    """The probe (a demux of the whole file) runs once: its result goes on to the frame reader."""
    import cv_reader.decode

    path = write_video(tmp_path / "clip.mp4", num_frames=20)
    calls = []
    original = cv_reader.decode.probe_video

    def counting(video):
        calls.append(video)
        return original(video)

    monkeypatch.setattr(cv_reader, "probe_video", counting)
    monkeypatch.setattr(cv_reader.decode, "probe_video", counting)
    assert len(read_uniform_frames(path, num_frames=4)) == 4
    assert len(calls) == 1


def test_unreadable_video_names_the_file(tmp_path):
    path = tmp_path / "not_a_video.mp4"
    path.write_text("text")
    with pytest.raises(cv_reader.VideoReadError, match="not_a_video.mp4"):
        read_uniform_frames(path, num_frames=4)


def test_uniform_frames_are_in_display_orientation(tmp_path):
    """A phone video stored landscape with a 90-degree display rotation gives portrait frames, turned as the codec
    path turns its mosaics (cv_reader.frames.letterboxed_content)."""
    from cv_reader.decode import frame_orientation
    from tests.cv_reader.synth import write_video as write_rotated

    rng = np.random.default_rng(0)
    coded = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(8)]
    path = write_rotated(tmp_path / "phone.mp4", coded, rotation=90)
    frames = read_uniform_frames(path, num_frames=2)
    with av.open(str(path)) as container:
        first = next(container.decode(video=0))
        rotation = frame_orientation(first)[0]
        assert rotation in (90, 270)  # the premise: rotation metadata survives the muxer
        want = np.rot90(first.to_ndarray(format="rgb24"), rotation // 90)
    assert frames[0].shape == (96, 64, 3)
    np.testing.assert_array_equal(frames[0], want)
