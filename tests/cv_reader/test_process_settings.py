"""The process settings of `cv_reader.process_settings`, each in a fresh interpreter: freed temporaries stay mapped
(glibc thresholds at their dynamic ceiling: the energy pass does not fault its temporaries in again for every batch),
numpy's huge-page hint is off, and OpenBLAS's idle workers do not spin after the import; none of it when the user
opts out."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from cv_reader.process_settings import BLAS_THREAD_TIMEOUT

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


def _child(code: str, *args: str | Path, **env: str) -> dict:
    """The JSON line printed by `code` run with `args` in a fresh interpreter (with `env` added)."""
    path = os.pathsep.join([str(REPO / "Compressed_Video_Reader"), os.environ.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
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
    assert _faults_after_selection(video, CV_READER_PROCESS_TUNING="0") > 1000


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
    opted_out = _hint_around_selection(video, CV_READER_PROCESS_TUNING="0")
    assert opted_out["after"] == opted_out["before"]
    # (the switch's earlier name still works)
    assert _hint_around_selection(video, CV_READER_MALLOC_TUNING="0")["after"] == opted_out["before"]
    if platform.system() == "Linux":
        assert opted_out["before"] is True


# OpenBLAS's worker timeout as the loaded library read it (its own getter; None when numpy's BLAS is not OpenBLAS),
# the process CPU over a 0.2-s sleep right after `import cv_reader`, and whether the variable was left set.
_BLAS_CHILD = """
import ctypes, json, os, resource, sys, time
if sys.argv[1] == "numpy first":
    import numpy
import cv_reader
libs = [line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower() and ".so" in line]
timeout = ctypes.CDLL(libs[0]).openblas_thread_timeout() if libs else None
usage = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
before = usage()
time.sleep(0.2)
idle_ms = (usage() - before) * 1e3
print(json.dumps({"timeout": timeout, "idle_cpu_ms": idle_ms, "variable": os.environ.get("OPENBLAS_THREAD_TIMEOUT")}))
"""


def test_openblas_workers_sleep_after_the_import():
    """OpenBLAS's idle workers spun ~0.1 s after numpy's import, one core's worth of CPU taken from a fresh
    process's first selection (40-45 ms on a 10-s 360p clip); loaded by `import cv_reader`, they sleep at once."""
    tuned = _child(_BLAS_CHILD, "cv_reader first")
    if tuned["timeout"] is None:
        pytest.skip("numpy's BLAS here is not OpenBLAS: no idle spin to shorten")
    assert tuned["timeout"] == BLAS_THREAD_TIMEOUT
    assert tuned["variable"] is None  # not passed on to child processes
    assert tuned["idle_cpu_ms"] < 20  # (with OpenBLAS's default: ~45-60 ms on 2 cores)
    # The user's own setting, the opt-out, and a host that loaded numpy first are left as they are.
    assert _child(_BLAS_CHILD, "cv_reader first", OPENBLAS_THREAD_TIMEOUT="25")["timeout"] == 25
    assert _child(_BLAS_CHILD, "cv_reader first", CV_READER_PROCESS_TUNING="0")["timeout"] != BLAS_THREAD_TIMEOUT
    assert _child(_BLAS_CHILD, "numpy first")["timeout"] != BLAS_THREAD_TIMEOUT
