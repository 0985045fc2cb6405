"""glibc allocator thresholds for the pipeline's short-lived temporaries (the one owner of this process setting).

glibc returns a freed block above its mmap threshold to the OS at once, and trims the heap top beyond the trim
threshold; both start low (128 KiB) and only rise as the process frees large mmapped blocks, up to a 32 MiB mmap /
64 MiB trim ceiling. Until a process gets there, every batch of the energy pass (a few hundred KiB to a few MiB per
array, freed after each batch) is faulted in again page by page: about half of a fresh process's ~37k page faults
on a 4 s 360p clip, 0.05-0.1 s of system time (`tests/cv_reader/test_allocator.py` pins the effect). Setting the
ceiling values up front is the state glibc itself reaches after the first large free, so a host process is not
given a setting it would not have reached on its own. Set `CV_READER_MALLOC_TUNING=0` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc `mallopt` parameters
MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the highest its dynamic threshold goes
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # glibc pairs each dynamic mmap threshold with twice that trim threshold

_applied: bool | None = None  # a forked child inherits both the setting and this flag


def keep_freed_memory_mapped() -> bool:
    """Raise glibc's mmap/trim thresholds to their dynamic ceiling, once per process. Returns whether the setting is
    in effect; False without glibc (nothing changes) or when opted out."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get("CV_READER_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # not glibc
        return False
