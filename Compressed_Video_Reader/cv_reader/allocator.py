"""Allocator settings for the pipeline's short-lived temporaries (the one owner of these process settings): glibc's
thresholds, and numpy's transparent-huge-page hint.

glibc returns a freed block above its mmap threshold to the OS at once, and trims the heap top beyond the trim
threshold; both start low (128 KiB) and only rise as the process frees large mmapped blocks, up to a 32 MiB mmap /
64 MiB trim ceiling. Until a process gets there, every batch of the energy pass (a few hundred KiB to a few MiB per
array, freed after each batch) is faulted in again page by page: about half of a fresh process's ~37k page faults
on a 4 s 360p clip, 0.05-0.1 s of system time (`tests/cv_reader/test_allocator.py` pins the effect). Setting the
ceiling values up front is the state glibc itself reaches after the first large free, so a host process is not
given a setting it would not have reached on its own.

numpy asks the kernel for transparent huge pages (`madvise(MADV_HUGEPAGE)`) for every array from 4 MiB: the
canvas blocks, the mosaics, a batch's warps. The first touch of such a page zeroes 2 MiB at once, and in a virtual
machine whose host backs guest memory lazily (the 2-core VMs this package is measured on) a fresh huge page also
faults in 512 host pages: 37 % of a fresh process's CPU samples on a 4-s 360p clip sat in `clear_page_erms` under
`do_huge_pmd_anonymous_page` (perf), some 6 ms per huge page, against ~2 us for a recycled 4 KiB page. The hint is
turned off for the process: select + mosaics of that clip, fresh processes, median of 7, 273 -> 191 ms wall and
388 -> 286 ms CPU, with far less spread (THP runs ranged 194-502 ms). Set `CV_READER_MALLOC_TUNING=0` to leave
both settings alone.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc `mallopt` parameters
MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the highest its dynamic threshold goes
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # glibc pairs each dynamic mmap threshold with twice that trim threshold

_applied: bool | None = None  # a forked child inherits both the setting and this flag


def keep_freed_memory_mapped() -> bool:
    """Raise glibc's mmap/trim thresholds to their dynamic ceiling and turn off numpy's huge-page hint, once per
    process. Returns whether the glibc setting is in effect; False without glibc or when opted out (then nothing
    changes)."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("CV_READER_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
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
