"""Polling for tests that wait on another process or a browser."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], bool], *, seconds: float = 30.0, every: float = 0.2) -> bool:
    """Whether `condition()` became true within `seconds`, asked every `every` seconds (and once more at the end)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()
