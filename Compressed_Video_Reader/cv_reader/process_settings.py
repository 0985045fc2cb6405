"""Process settings that `cv_reader` applies for its short-lived work (the one owner of them): glibc's allocator
thresholds, numpy's transparent-huge-page hint, and how long OpenBLAS's idle workers spin. Set
`CV_READER_PROCESS_TUNING=0` to leave all three alone.

glibc returns a freed block above its mmap threshold to the OS at once, and trims the heap top beyond the trim
threshold; both start low (128 KiB) and only rise as the process frees large mmapped blocks, up to a 32 MiB mmap /
64 MiB trim ceiling. Until a process gets there, every batch of the energy pass (a few hundred KiB to a few MiB per
array, freed after each batch) is faulted in again page by page: about half of a fresh process's ~37k page faults
on a 4 s 360p clip, 0.05-0.1 s of system time (`tests/cv_reader/test_process_settings.py` pins the effect). Setting
the ceiling values up front is the state glibc itself reaches after the first large free, so a host process is not
given a setting it would not have reached on its own.

numpy asks the kernel for transparent huge pages (`madvise(MADV_HUGEPAGE)`) for every array from 4 MiB: the
canvas blocks, the mosaics, a batch's warps. The first touch of such a page zeroes 2 MiB at once, and in a virtual
machine whose host backs guest memory lazily (the 2-core VMs this package is measured on) a fresh huge page also
faults in 512 host pages: 37 % of a fresh process's CPU samples on a 4-s 360p clip sat in `clear_page_erms` under
`do_huge_pmd_anonymous_page` (perf), some 6 ms per huge page, against ~2 us for a recycled 4 KiB page. The hint is
turned off for the process: select + mosaics of that clip, fresh processes, median of 7, 273 -> 191 ms wall and
388 -> 286 ms CPU, with far less spread (THP runs ranged 194-502 ms).

OpenBLAS (numpy's BLAS in the PyPI wheels) starts its worker threads when numpy is imported, and an idle worker
busy-waits 2**28 CPU cycles (~0.1 s) before it sleeps: after the import, and again after every threaded BLAS call.
cv_reader makes no BLAS call, yet that first spin overlapped the first selection of a fresh process and took one
of the two cores from it: 40-45 ms of CPU on a 10-s 360p clip. When cv_reader is what imports numpy, OpenBLAS is
loaded with `OPENBLAS_THREAD_TIMEOUT` = BLAS_THREAD_TIMEOUT (2**20 cycles, under a millisecond), the variable
removed again right after (OpenBLAS reads it once, when loaded; child processes are not given it). The number of
BLAS threads is not changed: a 400x400 matrix product still runs on every core, as fast. A host that imported numpy
first, or set the timeout itself, keeps its own setting.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc `mallopt` parameters
MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the highest its dynamic threshold goes
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # glibc pairs each dynamic mmap threshold with twice that trim threshold

# OpenBLAS's idle spin, as a power of two of CPU cycles (it takes 4-30; its default is 28). 20: back-to-back BLAS
# calls of a host still find their workers awake.
BLAS_THREAD_TIMEOUT = 20
_BLAS_TIMEOUT_VARIABLES = ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT")  # (the second: its older name)

_applied: bool | None = None  # a forked child inherits both the setting and this flag


def opted_out() -> bool:
    """Whether the user asked to leave the process settings alone: `CV_READER_PROCESS_TUNING=0`, or the earlier
    name of that switch, `CV_READER_MALLOC_TUNING=0`."""
    return any(
        os.environ.get(name, "1").strip().lower() in ("0", "false", "no", "off")
        for name in ("CV_READER_PROCESS_TUNING", "CV_READER_MALLOC_TUNING")
    )


def load_numpy_with_short_blas_spin() -> bool:
    """Import numpy, loading OpenBLAS with idle workers that sleep after BLAS_THREAD_TIMEOUT cycles, unless numpy is
    loaded already, the user set the timeout, or opted out. Returns whether the timeout was set. Called by
    `cv_reader/__init__` before anything imports numpy."""
    if opted_out() or "numpy" in sys.modules or any(name in os.environ for name in _BLAS_TIMEOUT_VARIABLES):
        return False
    os.environ[_BLAS_TIMEOUT_VARIABLES[0]] = str(BLAS_THREAD_TIMEOUT)
    try:
        import numpy  # noqa: F401  (OpenBLAS reads the variable now, once)
    finally:
        os.environ.pop(_BLAS_TIMEOUT_VARIABLES[0], None)
    return True


def keep_freed_memory_mapped() -> bool:
    """Raise glibc's mmap/trim thresholds to their dynamic ceiling and turn off numpy's huge-page hint, once per
    process. Returns whether the glibc setting is in effect; False without glibc or when opted out (then nothing
    changes)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if opted_out():
        return False
    _no_numpy_hugepages()
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # not glibc
        return False


def _no_numpy_hugepages() -> None:
    """Turn off numpy's MADV_HUGEPAGE hint for new arrays (a private numpy switch, present since numpy 1.20; without
    it nothing changes)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)
