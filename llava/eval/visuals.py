"""What an lmms-eval task's `doc_to_visual` returns, as (images, video paths) for the processor.

lmms-eval 0.7.3 tasks return visuals in many shapes: a list of PIL images or paths (most tasks), a bare path string
(`temporalbench_long_qa`), nested lists, dicts such as `{"type": "video", "path": ...}` or HF `Image` feature dicts
(`{"bytes": ..., "path": ...}`), or `[]` when the task could not find its media. Everything goes through
`normalize_visuals` here, so one function decides what a visual is (iterating a bare string would give one
"image" per character). A media file that does not exist raises `MissingMediaError` naming it; the model counts it
and either stops or scores the document as failed (`on_missing_video`).

No torch here: the module is imported by tests and tools that never build the model.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL.Image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".wmv", ".3gp", ".ts")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# The video benchmarks (upstream's eval-script regex, lmms-eval 0.7.3 names): a task of these that gives no visual
# for a document lost its video, it is not a text-only question.
VIDEO_TASK_PATTERN = re.compile(r"video|perceptiontest|mvbench|nextqa|temporalbench|tomato|egoschema|mlvu|mmvu")
# Keys of the dict visuals tasks return, in the order they are tried.
_DICT_PATH_KEYS = ("path", "video", "video_path", "url", "image", "image_path")


class MissingMediaError(FileNotFoundError):
    """A visual names a file that does not exist (the message names the file), or a document's media could not be
    found at all (`message` says how)."""

    def __init__(self, path: str, *, kind: str, message: str | None = None) -> None:
        super().__init__(message or f"{kind} not found: {path}")
        self.path = path
        self.kind = kind


@dataclass
class Visuals:
    """The visuals of one document: PIL images (or image paths) and video file paths, in the task's order."""

    images: list[Any] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.images or self.videos)


def is_video_path(path: str) -> bool:
    """A path is a video unless its suffix says image (lmms-eval's chat models do the same for unknown suffixes);
    a folder of frames is not supported and is left to the existence check."""
    lower = path.lower()
    if lower.endswith(VIDEO_SUFFIXES):
        return True
    return not lower.endswith(IMAGE_SUFFIXES)


def _flatten(visuals: Any) -> Iterable[Any]:
    """Leaves of nested lists / tuples; a bare string, path, image or dict is one leaf."""
    if visuals is None:
        return
    if isinstance(visuals, (list, tuple)):
        for item in visuals:
            yield from _flatten(item)
    else:
        yield visuals


def _from_dict(visual: dict) -> Any:
    """The path or image a dict visual stands for (HF `Image` dicts carry `bytes` and / or `path`)."""
    if visual.get("bytes"):
        return PIL.Image.open(io.BytesIO(visual["bytes"]))
    for key in _DICT_PATH_KEYS:
        value = visual.get(key)
        if isinstance(value, PIL.Image.Image):
            return value
        if isinstance(value, (str, os.PathLike)) and str(value):
            return os.fspath(value)
    if "array" in visual or visual.get("type") == "audio":
        raise ValueError("audio visuals are not supported by llava_ov_encoder")
    raise ValueError(f"unsupported visual dict with keys {sorted(visual)} (expected one of {_DICT_PATH_KEYS})")


def normalize_visuals(visuals: Any, *, check_files: bool = True) -> Visuals:
    """lmms-eval visuals of any shape -> `Visuals`.

    Args:
        visuals: what `doc_to_visual(doc)` returned: None, a bare path, a PIL image, a dict, or (nested) lists.
        check_files: raise `MissingMediaError` for a path that does not exist (the message names it).
    """
    out = Visuals()
    for visual in _flatten(visuals):
        if isinstance(visual, dict):
            visual = _from_dict(visual)
        if isinstance(visual, PIL.Image.Image):
            out.images.append(visual)
            continue
        if isinstance(visual, (str, os.PathLike)):
            path = os.fspath(visual)
            video = is_video_path(path)
            if check_files and not Path(path).is_file():
                raise MissingMediaError(path, kind="video" if video else "image")
            (out.videos if video else out.images).append(path)
            continue
        if isinstance(visual, bytes):
            raise ValueError("raw bytes visuals (audio?) are not supported by llava_ov_encoder")
        raise ValueError(f"unsupported visual of type {type(visual).__name__} (audio is not supported)")
    return out


def doc_mentions_video(doc: Any) -> bool:
    """Whether a document names a video file in one of its fields (a hint that `[]` visuals mean a lost video)."""
    if not isinstance(doc, dict):
        return False
    return any(isinstance(value, str) and value.lower().endswith(VIDEO_SUFFIXES) for value in doc.values())


def is_video_task(task: str) -> bool:
    """Whether `task` is one of the video benchmarks (by lmms-eval 0.7.3 task name)."""
    return bool(VIDEO_TASK_PATTERN.search(task))


__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "MissingMediaError",
    "Visuals",
    "doc_mentions_video",
    "is_video_path",
    "is_video_task",
    "normalize_visuals",
]
