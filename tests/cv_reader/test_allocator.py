"""`select_patches` keeps freed temporaries mapped (glibc thresholds at their dynamic ceiling, `cv_reader.allocator`):
the energy pass does not fault its temporaries in again for every batch, unless the user opts out."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from .synth import moving_object_clip

REPO = Path(__file__).resolve().parents[2]

# In a fresh interpreter: one small selection, then page faults of 20 rounds of allocating and freeing two 2.4 MB
# arrays (the energy pass's pattern).
_CHILD = """
import json, resource, sys
import numpy as np
from cv_reader import select_patches
select_patches(sys.argv[1], num_frames=8, num_images=2, square_size=64, keep_pixels=False)
for _ in range(3):
    a, b = np.ones(300_000), np.ones(300_000)
    del a, b
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a, b = np.ones(300_000), np.ones(300_000)
    del a, b
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _child(code: str, video: Path, **env: str) -> dict:
    """The JSON line printed by `code` run on `video` in a fresh interpreter (with `env` added)."""
    path = os.pathsep.join([str(REPO / "Compressed_Video_Reader"), os.environ.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code, str(video)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": path, **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _faults_after_selection(video: Path, **env: str) -> int:
    return _child(_CHILD, video, **env)["faults"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc allocator setting")
def test_selection_keeps_freed_memory_mapped(tmp_path):
    video = moving_object_clip(tmp_path / "clip.mp4", num_frames=12, height=64, width=96).path
    assert _faults_after_selection(video) < 100
    # The opt-out leaves glibc's defaults: the same work faults its memory in again (not a property of this machine).
    assert _faults_after_selection(video, CV_READER_MALLOC_TUNING="0") > 1000


# numpy's transparent-huge-page hint, read in a fresh interpreter before and after one small selection.
_HINT_CHILD = """
import json, sys
from numpy._core import multiarray
from cv_reader import select_patches
def hint():
    previous = multiarray._set_madvise_hugepage(True)
    multiarray._set_madvise_hugepage(previous)
    return previous
before = hint()
select_patches(sys.argv[1], num_frames=8, num_images=2, square_size=64, keep_pixels=False)
print(json.dumps({"before": before, "after": hint()}))
"""


def _hint_around_selection(video: Path, **env: str) -> dict:
    return _child(_HINT_CHILD, video, **env)


def test_selection_turns_off_numpy_huge_pages(tmp_path):
    video = moving_object_clip(tmp_path / "clip.mp4", num_frames=12, height=64, width=96).path
    hint = _hint_around_selection(video)
    assert hint["after"] is False
    # The opt-out leaves numpy's own choice (on for Linux kernels from 4.6) as it was.
    opted_out = _hint_around_selection(video, CV_READER_MALLOC_TUNING="0")
    assert opted_out["after"] == opted_out["before"]
    if platform.system() == "Linux":
        assert opted_out["before"] is True
