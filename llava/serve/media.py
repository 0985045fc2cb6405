"""A file the user chats about: what it is (image or video), what the processor receives for it, how many visual
tokens it costs, and the picture of the patches the model sees (cv_reader's pipeline figure for codec videos)."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import PIL.Image

import cv_reader
from cv_reader.visualize import render_pipeline_figure
from llava.model import LlavaOVProcessor
from llava.model.llava_ov.video_inputs import VideoFrames

logger = logging.getLogger(__name__)

MediaKind = Literal["image", "video"]


class UnsupportedMediaError(ValueError):
    """The file is neither an image PIL decodes nor a video FFmpeg decodes."""


@dataclass(frozen=True)
class Media:
    """A loaded file.

    Attributes:
        kind: "image" or "video".
        path: the file.
        item: what the processor receives for it: the path (images, uniform-frame videos) or `VideoFrames` with the
            codec positions (codec videos, selected once here so that the figure and the model agree).
        num_visual_tokens: placeholder tokens the file takes in the prompt (one per encoder patch).
        figure: PNG of the patches the model sees (the image itself for images), None when there is none.
    """

    kind: MediaKind
    path: Path
    item: Any
    num_visual_tokens: int
    figure: Path | None


def detect_media_kind(path: str | Path) -> MediaKind:
    """The kind of `path`: "image" when PIL can decode it, "video" when FFmpeg finds a decodable video stream.

    Raises:
        FileNotFoundError: no such file.
        UnsupportedMediaError: anything else (text, audio-only, a truncated file, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with PIL.Image.open(path) as image:
            image.verify()
        return "image"
    except (OSError, SyntaxError, ValueError):
        pass  # not an image: try it as a video next
    try:
        cv_reader.probe_video(path)
    except (cv_reader.VideoReadError, OSError, ValueError) as error:
        logger.debug("%s: rejected (%s)", path, error)
        raise UnsupportedMediaError(
            f"{path.name} is not a video or an image: use a video (e.g. .mp4, .mkv, .webm) or an image "
            "(e.g. .png, .jpg)"
        ) from error
    return "video"


def load_media(path: str | Path, processor: LlavaOVProcessor, *, figure_dir: str | Path | None = None) -> Media:
    """Reads `path` as the processor will see it. Videos in the processor's "codec" mode go through
    `cv_reader.select_patches` with the processor's geometry (num_video_frames mosaics of video_square_size px,
    video_patch_size cells over video_temporal_size frames); the selection is rendered to `figure_dir`
    (a fresh temporary folder when None)."""
    path = Path(path)
    kind = detect_media_kind(path)
    if kind == "image":
        with PIL.Image.open(path) as image:
            width, height = image.size
        tokens = processor.count_image_tokens(width=width, height=height)
        return Media(kind=kind, path=path, item=path, num_visual_tokens=tokens, figure=path)
    if processor.video_mode != "codec":
        # Uniform frames keep every patch: there is no selection to draw.
        return Media(kind=kind, path=path, item=path, num_visual_tokens=processor.count_video_tokens(), figure=None)
    selection = cv_reader.select_patches(
        str(path),
        num_frames=processor.video_temporal_size,
        num_images=processor.num_video_frames,
        square_size=processor.video_square_size,
        patch_size=processor.video_patch_size,
    )
    mosaics = list(selection.mosaics())
    # The same VideoFrames the processor builds from a path in codec mode (video_inputs.select_codec_video).
    video = VideoFrames(frames=mosaics, positions_thw=np.asarray(selection.positions_thw))
    folder = Path(figure_dir) if figure_dir is not None else Path(tempfile.mkdtemp(prefix="llava_serve_"))
    figure = render_pipeline_figure(selection, folder / f"{path.stem}_patches.png")[0]
    tokens = processor.count_video_tokens(num_frames=len(mosaics), grid=processor.video_grid)
    logger.info("%s: %d mosaics, %d visual tokens, figure %s", path, len(mosaics), tokens, figure)
    return Media(kind=kind, path=path, item=video, num_visual_tokens=tokens, figure=figure)
