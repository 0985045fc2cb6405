"""Exceptions raised by `cv_reader`: every message names the offending file."""

from __future__ import annotations

from pathlib import Path


class VideoReadError(ValueError):
    """A video cannot be used: missing, empty, truncated, not a video, audio only, or an undecodable codec.

    Attributes:
        path: the file that failed.
        reason: a short machine-friendly reason (``"missing"``, ``"empty"``, ``"unreadable"``, ``"not_a_video"``
            (also a directory, pipe or device), ``"no_video_stream"``, ``"unsupported_codec"``, ``"no_frames"``,
            ``"decode_error"``, ``"analysis_error"``, ``"too_few_cells"``).
    """

    def __init__(self, path: str | Path, reason: str, *, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        message = f"{self.path}: {reason}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)
