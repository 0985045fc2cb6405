"""The project's clip writer makes the same file on every machine (the playground and the tests' clips)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A child that writes one clip with the CPUs given.
_CHILD = """
import os, sys
sys.path.insert(0, {repo!r})
from llava.data.synthetic import render_clip, ClipSpec, write_video
os.sched_setaffinity(0, {cpus!r})
spec = ClipSpec(colour="red", direction="right", distractor=None, shape="square", seed=3)
write_video(sys.argv[1], render_clip(spec, width=320, height=256, frames=24), codec=sys.argv[2])
"""


def _digest(path: Path, cpus: set[int], *, codec: str) -> str:
    code = _CHILD.format(repo=str(REPO), cpus=cpus)
    subprocess.run([sys.executable, "-c", code, str(path), codec], check=True, timeout=120)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to compare thread counts")
@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_clips_do_not_depend_on_the_number_of_cpus(tmp_path, codec):
    """x264 sizes its threads, FFmpeg's mpeg4 encoder its slices, from the CPUs the process may use."""
    cpus = os.sched_getaffinity(0)
    one = _digest(tmp_path / "one.mp4", {min(cpus)}, codec=codec)
    every = _digest(tmp_path / "every.mp4", cpus, codec=codec)
    assert one == every
