"""A person at a terminal, for tests: runs a program on a pseudo-terminal, waits for text, types lines."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Sequence


class PtySession:
    """`command` on a pty (so `input()` sees a real terminal). `expect` waits for a pattern in what has been printed
    since the last match; `transcript` is everything printed so far."""

    def __init__(self, command: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        self.timeout = timeout
        main_fd, child_fd = pty.openpty()
        self.process = subprocess.Popen(
            list(command), stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env, close_fds=True
        )
        os.close(child_fd)
        self.fd = main_fd
        self.transcript = ""
        self._cursor = 0
        # Arrival time of every chunk read: a streamed answer arrives in several chunks, a buffered one in one.
        self.chunks: list[tuple[float, str]] = []

    def _read(self, deadline: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            data = os.read(self.fd, 4096).decode(errors="replace").replace("\r\n", "\n")
        except OSError:  # EIO: the program exited and the pty closed
            return False
        self.chunks.append((time.monotonic(), data))
        self.transcript += data
        return bool(data)

    def expect(self, pattern: str) -> re.Match[str]:
        """Waits for `pattern` (a regex) after the previous match; AssertionError with the transcript on timeout."""
        deadline = time.monotonic() + self.timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.transcript, self._cursor)
            if match:
                self._cursor = match.end()
                return match
            if time.monotonic() >= deadline or not self._read(deadline):
                if time.monotonic() >= deadline or self.process.poll() is not None:
                    raise AssertionError(f"timed out waiting for {pattern!r}; transcript:\n{self.transcript}")

    def send_line(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def close(self) -> int:
        """Waits for the program to exit (killing it after the timeout); returns its exit status."""
        try:
            return self.process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            os.close(self.fd)
