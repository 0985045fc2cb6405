"""A file the user chats about: what it is (image or video), what the processor receives for it, how many visual
tokens it costs, and the picture of the patches the model sees (cv_reader's pipeline figure for codec videos).

Everything the model will need from the file is read when the file is loaded (decoded, patches selected, pixels
preprocessed), so a file that cannot be used is refused at load with one `MediaError` line, never at the first
question. Images above `max_image_pixels` are refused before their pixels are decoded (decompression bombs).
"""

from __future__ import annotations

import argparse
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
from llava.model.llava_ov.video_inputs import VideoFrames, read_uniform_frames

logger = logging.getLogger(__name__)

MediaKind = Literal["image", "video"]
# Largest image the demos decode (width * height), --max-image-pixels: 64 megapixels is above the photos of common
# cameras and phones, and well under what a 20000 x 20000 PNG header (a decompression bomb) claims.
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000


class MediaError(ValueError):
    """A file the demo cannot use. The message is one line for the user and names the file."""


class UnsupportedMediaError(MediaError):
    """The file is neither an image PIL decodes nor a video FFmpeg decodes."""


@dataclass(frozen=True)
class Media:
    """A loaded file.

    Attributes:
        kind: "image" or "video".
        path: the file.
        item: what the processor receives for it, already decoded: an RGB PIL image, or `VideoFrames` (codec mosaics
            with their positions, selected once here so that the figure and the model agree; or uniform frames).
        num_visual_tokens: placeholder tokens the file takes in the prompt (one per encoder patch).
        figure: PNG of the patches the model sees (the image itself for images), None when there is none.
    """

    kind: MediaKind
    path: Path
    item: Any
    num_visual_tokens: int
    figure: Path | None


def add_media_arguments(parser: argparse.ArgumentParser) -> None:
    """The file options both front ends take."""
    parser.add_argument(
        "--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS,
        help="largest image accepted, in pixels (width x height); larger ones are refused before decoding "
        f"(default {DEFAULT_MAX_IMAGE_PIXELS})",
    )  # fmt: skip


def set_image_pixel_limit(max_image_pixels: int) -> None:
    """Makes PIL's own decompression-bomb guard of this process follow --max-image-pixels (PIL refuses images over
    twice `Image.MAX_IMAGE_PIXELS` at open; `load_media` refuses those over `max_image_pixels` itself). For the
    front ends' entry points, which own their process."""
    PIL.Image.MAX_IMAGE_PIXELS = max_image_pixels


def _one_line(error: BaseException, *, path: Path) -> str:
    """An exception as one short line: its type and its first message line, with the file named by its name only
    (the message already starts with it; the web page must not show the server's folders)."""
    text = str(error).strip().splitlines()
    detail = text[0].replace(f"{path}: ", "").replace(str(path), path.name) if text else ""
    if len(detail) > 300:
        detail = detail[:297] + "..."
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def _check_path(path: Path) -> None:
    if path.is_dir():
        raise MediaError(f"{path} is a directory, not a file: give a video or an image file")
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path} is not a regular file (a device, a pipe or a socket): give a video or an image file")
    try:
        with path.open("rb") as handle:
            empty = not handle.read(1)
    except OSError as error:  # permissions, a file removed meanwhile, an I/O error
        raise MediaError(f"{path}: cannot be opened ({error.strerror or error})") from error
    if empty:
        raise MediaError(f"{path.name} is empty (0 bytes): give a video or an image file")


def _image_size(path: Path, *, max_image_pixels: int) -> tuple[int, int] | None:
    """(width, height) from the image header when PIL recognises the file, None when it is not an image.

    Raises `MediaError` for an image over `max_image_pixels` (PIL refuses the largest ones at open already)."""
    try:
        with PIL.Image.open(path) as image:
            width, height = image.size
    except PIL.Image.DecompressionBombError as error:
        raise MediaError(
            f"{path.name}: the image is too large to decode safely: {error} The demo decodes images up to "
            f"{max_image_pixels} pixels (--max-image-pixels)"
        ) from error
    except (OSError, SyntaxError, ValueError):  # PIL.UnidentifiedImageError is an OSError: not an image
        return None
    if width * height > max_image_pixels:
        raise MediaError(
            f"{path.name}: the image is {width}x{height} = {width * height} pixels, over the demo's limit of "
            f"{max_image_pixels} pixels (--max-image-pixels)"
        )
    return width, height


def detect_media_kind(path: str | Path, *, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> MediaKind:
    """The kind of `path`: "image" when PIL recognises it, "video" when FFmpeg finds a video stream with packets.

    Only headers are read here; `load_media` decodes. Raises `MediaError` (a directory, a missing file, an image
    over the pixel limit) or `UnsupportedMediaError` (text, audio only, ...).
    """
    path = Path(path)
    _check_path(path)
    if _image_size(path, max_image_pixels=max_image_pixels) is not None:
        return "image"
    try:
        cv_reader.probe_video(path)
    except Exception as error:  # noqa: BLE001 - FFmpeg reports unreadable input with many exception types
        logger.debug("%s: rejected (%s)", path, error)
        # cv_reader's reason, first clause only (its detail goes on with FFmpeg's message and the full path).
        why = getattr(error, "detail", "").split(";")[0] or type(error).__name__
        raise UnsupportedMediaError(
            f"{path.name} is not a video or an image ({why}): use a video (e.g. .mp4, .mkv, .webm) or an image "
            "(e.g. .png, .jpg)"
        ) from error
    return "video"


def load_media(
    path: str | Path,
    processor: LlavaOVProcessor,
    *,
    figure_dir: str | Path | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Media:
    """Reads `path` as the processor will see it, fully (decode, codec patch selection, pixel preprocessing).

    Videos in the processor's "codec" mode go through `cv_reader.select_patches` with the processor's geometry
    (num_video_frames mosaics of video_square_size px, video_patch_size cells over video_temporal_size frames); the
    selection is rendered to `figure_dir` (a fresh temporary folder when None, which the caller then owns).

    Raises:
        MediaError: for every reason the file cannot be used (whatever the decoder raised), one line naming it.
    """
    path = Path(path)
    try:
        return _load_media(path, processor, figure_dir=figure_dir, max_image_pixels=max_image_pixels)
    except MediaError:
        raise
    except cv_reader.VideoReadError as error:
        detail = f": {error.detail}".replace(str(path), path.name) if error.detail else ""
        raise MediaError(f"{path.name}: the video cannot be read ({error.reason}{detail})".splitlines()[0]) from error
    except Exception as error:  # noqa: BLE001 - decoders raise anything on damaged files; the user gets one line
        logger.debug("%s: cannot be read", path, exc_info=True)
        raise MediaError(f"{path.name}: cannot be read ({_one_line(error, path=path)})") from error


def _load_media(path: Path, processor: LlavaOVProcessor, *, figure_dir: str | Path | None, max_image_pixels: int):
    kind = detect_media_kind(path, max_image_pixels=max_image_pixels)
    if kind == "image":
        with PIL.Image.open(path) as opened:
            image = opened.convert("RGB")  # decodes every pixel now: a damaged file fails here, not at a question
        processor.preprocess_image(image)
        tokens = processor.count_image_tokens(width=image.width, height=image.height)
        return Media(kind=kind, path=path, item=image, num_visual_tokens=tokens, figure=path)
    if processor.video_mode != "codec":
        # Uniform frames keep every patch: there is no selection to draw.
        video = VideoFrames(frames=read_uniform_frames(path, num_frames=processor.num_video_frames))
        processor.preprocess_video(video)
        tokens = processor.count_video_tokens(num_frames=len(video.frames))
        return Media(kind=kind, path=path, item=video, num_visual_tokens=tokens, figure=None)
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
    processor.preprocess_video(video)  # the positions and mosaics must fit the model's grid
    folder = Path(figure_dir) if figure_dir is not None else Path(tempfile.mkdtemp(prefix="llava_serve_"))
    figure = render_pipeline_figure(selection, folder / f"{path.stem}_patches.png")[0]
    tokens = processor.count_video_tokens(num_frames=len(mosaics), grid=processor.video_grid)
    logger.info("%s: %d mosaics, %d visual tokens, figure %s", path, len(mosaics), tokens, figure)
    return Media(kind=kind, path=path, item=video, num_visual_tokens=tokens, figure=figure)
