"""Manifest sample -> processor inputs, and its token cost without decoding media
(spec: shared/specs/llava_model_and_training.md sections 3 and 5.5; codec.md section 8).

Sample kinds, decided by explicit keys (never by "exactly 8 images"):
* `positions_thw` + `image` = T mosaic paths: ONE codec video (`VideoFrames`); its T `<image>` markers (the stage-2
  rewrite of `<video>`, codec.md 8.7) become one `<video>` marker.
* `video`: a raw video file, decoded by the processor (cv_reader selection or uniform frames).
* `image` / `images`: one or more images, one `<image>` marker each (prepended when the text has none).
* none of these: text only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava.model.llava_ov.chat_format import (
    IMAGE_MARKER,
    VIDEO_MARKER,
    collapse_frame_lines,
    marker_prefix,
    strip_markers,
)
from llava.model.llava_ov.processing_llava_ov import LlavaOVProcessor
from llava.model.llava_ov.video_inputs import VideoFrames, positions_grid

from .manifests import ManifestRecord
from .media import image_size, positions_rows

# Upstream `preprocess_multimodal` strips this tag from LLaVA-OneVision captions.
_NOISY_CAPTION_TAG = "QA_GT_caption_based_noisy"


@dataclass
class SampleInputs:
    """What the processor needs for one sample. `images`: paths; `videos`: `VideoFrames` or video paths."""

    conversation: list[dict[str, Any]]
    images: list[str] = field(default_factory=list)
    videos: list[VideoFrames | str] = field(default_factory=list)
    sample_id: str | None = None


def resolve_media(path: str, media_root: Path) -> str:
    """Relative paths are joined to `media_root`; absolute ones bypass it (upstream `os.path.join` semantics)."""
    return os.path.join(media_root, path)


def sample_inputs(record: ManifestRecord) -> SampleInputs:
    """Turns a manifest record into processor inputs (paths resolved, markers made consistent).

    Raises:
        ValueError naming `record.source` when markers and media disagree.
    """
    return inputs_from_sample(record.sample, source=record.source, media_root=record.media_root)


def inputs_from_sample(sample: dict[str, Any], *, source: str, media_root: Path) -> SampleInputs:
    """`sample_inputs` on a parsed sample (the start-up scan parses records itself)."""
    # Turns are copied one level deep: only their string values are replaced below, never mutated in place.
    conversation = [_normalise_turn(dict(turn)) for turn in sample["conversations"]]
    images = sample.get("image", sample.get("images"))
    images = [images] if isinstance(images, str) else list(images or [])
    paths = [resolve_media(path, media_root) for path in images]
    sample_id = None if sample.get("id") is None else str(sample["id"])

    if sample.get("positions_thw") is not None:
        if sample.get("video") is not None:
            raise ValueError(f"{source}: a sample has either 'positions_thw' (codec mosaics) or 'video', not both")
        video = VideoFrames(frames=paths, positions_thw=resolve_media(sample["positions_thw"], media_root))
        _collapse_frame_markers(conversation, num_frames=len(paths), source=source)
        return SampleInputs(conversation=conversation, videos=[video], sample_id=sample_id)
    if sample.get("video") is not None:
        if paths:
            raise ValueError(f"{source}: a raw-video sample cannot also have images (got {len(paths)})")
        _video_marker(conversation, source=source)
        return SampleInputs(
            conversation=conversation, videos=[resolve_media(sample["video"], media_root)], sample_id=sample_id
        )
    _image_markers(conversation, num_images=len(paths), source=source)
    return SampleInputs(conversation=conversation, images=paths, sample_id=sample_id)


def _normalise_turn(turn: dict[str, Any]) -> dict[str, Any]:
    key = "value" if "value" in turn else "content"
    if isinstance(turn.get(key), str):
        turn[key] = turn[key].replace(_NOISY_CAPTION_TAG, "").strip() if _NOISY_CAPTION_TAG in turn[key] else turn[key]
    return turn


def _text_key(turn: dict[str, Any]) -> str:
    return "value" if "value" in turn else "content"


def _is_user(turn: dict[str, Any]) -> bool:
    return str(turn.get("from", turn.get("role"))).lower() in ("human", "user")


def _count(conversation: list[dict[str, Any]], marker: str) -> int:
    return sum(t[_text_key(t)].count(marker) for t in conversation if isinstance(t[_text_key(t)], str))


def _prepend(conversation: list[dict[str, Any]], text: str, *, source: str) -> None:
    for turn in conversation:
        if _is_user(turn) and isinstance(turn[_text_key(turn)], str):
            turn[_text_key(turn)] = text + turn[_text_key(turn)]
            return
    raise ValueError(f"{source}: no user turn to attach the visual input to")


def _image_markers(conversation: list[dict[str, Any]], *, num_images: int, source: str) -> None:
    found = _count(conversation, IMAGE_MARKER)
    if _count(conversation, VIDEO_MARKER):
        raise ValueError(f"{source}: {VIDEO_MARKER} marker in a sample without a video")
    if found == 0 and num_images:
        _prepend(conversation, marker_prefix(num_images=num_images), source=source)
        return
    if found != num_images:
        raise ValueError(f"{source}: {found} {IMAGE_MARKER} markers for {num_images} images")
    if num_images == 1:
        # Upstream moves a lone image marker to the start of its turn (`preprocess_multimodal`).
        for turn in conversation:
            text = turn[_text_key(turn)]
            if isinstance(text, str) and IMAGE_MARKER in text and not text.startswith(IMAGE_MARKER):
                turn[_text_key(turn)] = IMAGE_MARKER + "\n" + text.replace(IMAGE_MARKER, "").strip()


def _video_marker(conversation: list[dict[str, Any]], *, source: str) -> None:
    videos, images = _count(conversation, VIDEO_MARKER), _count(conversation, IMAGE_MARKER)
    if videos == 1 and images == 0:
        return
    if videos == 0 and images == 1:
        # LLaVA-Video manifests mark the video with <image>.
        for turn in conversation:
            if isinstance(turn[_text_key(turn)], str):
                turn[_text_key(turn)] = turn[_text_key(turn)].replace(IMAGE_MARKER, VIDEO_MARKER)
        return
    if videos == 0 and images == 0:
        _prepend(conversation, marker_prefix(num_videos=1), source=source)
        return
    raise ValueError(f"{source}: a video sample needs one {VIDEO_MARKER} (or {IMAGE_MARKER}), got {videos} + {images}")


def _collapse_frame_markers(conversation: list[dict[str, Any]], *, num_frames: int, source: str) -> None:
    """The codec JSONL writes a video as `num_frames` `<image>` lines (`chat_format.frame_lines`): make that one
    `<video>` (`chat_format.collapse_frame_lines`)."""
    if _count(conversation, VIDEO_MARKER) == 1 and _count(conversation, IMAGE_MARKER) == 0:
        return
    if _count(conversation, IMAGE_MARKER) == 0 and _count(conversation, VIDEO_MARKER) == 0:
        _prepend(conversation, marker_prefix(num_videos=1), source=source)
        return
    if _count(conversation, IMAGE_MARKER) == num_frames:
        for turn in conversation:
            text = turn[_text_key(turn)]
            collapsed = collapse_frame_lines(text, num_frames=num_frames) if isinstance(text, str) else None
            if collapsed is not None:
                turn[_text_key(turn)] = collapsed
                return
    raise ValueError(
        f"{source}: a codec video with {num_frames} mosaics needs {num_frames} consecutive '<image>' lines "
        f"(or one {VIDEO_MARKER}); found {_count(conversation, IMAGE_MARKER)} {IMAGE_MARKER}"
    )


def visual_token_cost(inputs: SampleInputs, processor: LlavaOVProcessor) -> int:
    """Visual tokens of a sample from file headers only: image sizes (header only, and no file opened when the
    processor's geometry makes every image the same size), codec positions shape (the `.npy` header), raw videos at
    the processor's geometry."""
    total = 0
    fixed = fixed_image_tokens(processor)
    for path in inputs.images:
        if fixed is not None:
            total += fixed
            continue
        width, height = image_size(path)
        total += processor.count_image_tokens(width=width, height=height)
    for video in inputs.videos:
        if isinstance(video, VideoFrames) and video.positions_thw is not None:
            positions = video.positions_thw
            rows = positions_rows(positions) if isinstance(positions, (str, Path)) else len(positions)
            grid = positions_grid(int(rows), num_frames=len(video.frames))
            total += processor.count_video_tokens(num_frames=len(video.frames), grid=grid)
        elif isinstance(video, VideoFrames):
            total += processor.count_video_tokens(num_frames=len(video.frames))
        else:
            total += processor.count_video_tokens()
    return total


def fixed_image_tokens(processor: LlavaOVProcessor) -> int | None:
    """Tokens of every image when the geometry does not depend on the image size ("square"/"pad"), else None."""
    if processor.image_aspect_ratio in ("anyres", "native"):
        return None
    return processor.count_image_tokens(width=processor.image_size, height=processor.image_size)


def text_for_cost(inputs: SampleInputs, processor: LlavaOVProcessor) -> str:
    """The rendered prompt with its visual markers removed (tokenise it to count text tokens)."""
    return strip_markers(processor.render_prompt(inputs.conversation))


__all__ = [
    "SampleInputs",
    "fixed_image_tokens",
    "inputs_from_sample",
    "resolve_media",
    "sample_inputs",
    "text_for_cost",
    "visual_token_cost",
]
