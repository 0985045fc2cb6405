"""Synthetic clips shared by the cv_reader tests (encoded once per session with PyAV; small and fast)."""

from __future__ import annotations

import numpy as np
import pytest

from .synth import SynthVideo, moving_object_clip, smooth_texture, write_video


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cv_reader_clips")


@pytest.fixture(scope="session")
def moving_clip(clip_dir) -> SynthVideo:
    """Static textured background + one moving square, H.264 with B-frames, 96 frames 144x256."""
    return moving_object_clip(clip_dir / "moving.mp4", num_frames=96, seed=3)


@pytest.fixture(scope="session")
def pan_clip(clip_dir) -> SynthVideo:
    """Camera pan (1.5 px/frame) + a moving square."""
    return moving_object_clip(clip_dir / "pan.mp4", num_frames=96, pan=1.5, seed=4)


@pytest.fixture(scope="session")
def cut_clip(clip_dir) -> SynthVideo:
    """A scene cut at frame 48 (new background and object)."""
    return moving_object_clip(clip_dir / "cut.mp4", num_frames=96, cut_at=48, seed=5)


@pytest.fixture(scope="session")
def flat_clip(clip_dir) -> SynthVideo:
    """Near-uniform background (arbitrary codec vectors there) + a moving square."""
    return moving_object_clip(clip_dir / "flat.mp4", num_frames=96, flat_background=True, seed=6)


@pytest.fixture(scope="session")
def static_clip(clip_dir):
    """Nothing moves: 40 identical textured frames."""
    frame = smooth_texture(np.random.default_rng(7), height=144, width=256)
    return write_video(clip_dir / "static.mp4", [frame] * 40)
