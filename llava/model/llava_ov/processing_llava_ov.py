"""`LlavaOVProcessor`: the one owner of the LLaVA-OV prompt format and of placeholder expansion
(spec: shared/specs/llava_model_and_training.md sections 3-4 and 9.3; contract: one placeholder token per patch).

Per conversation it returns `input_ids` with every `<image>` marker replaced by exactly N placeholder tokens
(`<|image_pad|>`), N = (H / 14) * (W / 14) of that image or video frame, `labels` on assistant content + its
`<|im_end|>` only, and the visual items in text order: `pixel_values` (list of [3, H, W] images and [3, T, H, W]
videos) with `patch_positions` (None for images = the encoder's dense grid; int64 [T * g * g, 3] for videos).
A video is ONE vision item whose T frames are written as T `<image>` lines (`<video>` is the shorthand).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import PIL.Image
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from ..onevision_encoder.image_processing_onevision_encoder import compute_native_size
from .anyres import DEFAULT_IMAGE_GRID_PINPOINTS, resize_and_pad_image, select_best_resolution
from .chat_format import (
    CHAT_TEMPLATES,
    DEFAULT_SYSTEM_PROMPT,
    IMAGE_MARKER,
    VIDEO_MARKER,
    normalize_conversation,
    render_segments,
)
from .video_inputs import (
    VideoFrames,
    load_positions,
    read_uniform_frames,
    select_codec_video,
    uniform_positions,
)

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
ImageAspectRatio = Literal["anyres", "native", "pad", "square"]
IMAGE_ASPECT_RATIOS: tuple[str, ...] = ("anyres", "native", "pad", "square")
VideoMode = Literal["codec", "uniform"]
# Control tokens that must not come from user data: they would forge turns or placeholders.
_RESERVED_TOKENS = ("<|im_start|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>")
_MARKER_PATTERN = re.compile(f"({re.escape(IMAGE_MARKER)}|{re.escape(VIDEO_MARKER)})")
_VIDEO_PATTERN = re.compile(re.escape(VIDEO_MARKER))

ImageInput = Any  # PIL image, uint8 array [H, W, 3], or a path to an image file
VideoInput = Any  # VideoFrames, or a path to a video file (decoded on the fly)


class LlavaOVProcessor(ProcessorMixin):
    r"""
    Tokenizer (Qwen, with `<|image_pad|>`) + `OneVisionEncoderImageProcessor` (used for rescale/normalise and the
    pad/square resizes; geometry decisions are made here).

    Args:
        image_processor: a `OneVisionEncoderImageProcessor`.
        tokenizer: a Qwen tokenizer (or any tokenizer with the ChatML special tokens and `image_token`).
        chat_template: unused (the format is code, see `chat_format.py`); accepted for `ProcessorMixin`.
        template: `"qwen_1_5"` (ChatML, SFT) or `"plain"` (stage-1 captions).
        system_prompt: ChatML system prompt ("You are a helpful assistant." upstream).
        image_aspect_ratio: `"anyres"` (upstream SFT: one pinpoint canvas), `"native"` (aspect-preserving, area within
            the image processor's `[min_pixels, max_pixels]`), `"pad"` (black square, `image_size`), `"square"`
            (squash to `image_size`, upstream stage 1).
        image_grid_pinpoints: `(width, height)` canvases for anyres.
        image_size: side in pixels for `"pad"` / `"square"` (504 = 36 patches).
        num_video_frames: mosaics/frames per video (8).
        video_mode: raw video files: `"codec"` (on-the-fly `cv_reader` selection) or `"uniform"` frames.
        video_square_size, video_patch_size: `cv_reader` geometry; the grid square_size / patch_size (36) also sets
            the encoder size of each frame (grid * 14 = 504).
        video_temporal_size: the t range of positions (64 frames).
        image_token: the placeholder token (`<|image_pad|>`).
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        template: str = "qwen_1_5",
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        image_aspect_ratio: str = "anyres",
        image_grid_pinpoints: Sequence[Sequence[int]] | None = None,
        image_size: int = 504,
        num_video_frames: int = 8,
        video_mode: str = "codec",
        video_square_size: int = 576,
        video_patch_size: int = 16,
        video_temporal_size: int = 64,
        image_token: str = "<|image_pad|>",
        **kwargs: Any,
    ) -> None:
        if template not in CHAT_TEMPLATES:
            raise ValueError(f"template must be one of {CHAT_TEMPLATES}, got {template!r}")
        if image_aspect_ratio not in IMAGE_ASPECT_RATIOS:
            raise ValueError(f"image_aspect_ratio must be one of {IMAGE_ASPECT_RATIOS}, got {image_aspect_ratio!r}")
        if video_mode not in ("codec", "uniform"):
            raise ValueError(f"video_mode must be 'codec' or 'uniform', got {video_mode!r}")
        if video_square_size % video_patch_size:
            raise ValueError(f"video_square_size {video_square_size} is not a multiple of {video_patch_size}")
        self.template = template
        self.system_prompt = system_prompt
        self.image_aspect_ratio = image_aspect_ratio
        self.image_grid_pinpoints = [list(p) for p in (image_grid_pinpoints or DEFAULT_IMAGE_GRID_PINPOINTS)]
        self.image_size = image_size
        self.num_video_frames = num_video_frames
        self.video_mode = video_mode
        self.video_square_size = video_square_size
        self.video_patch_size = video_patch_size
        self.video_temporal_size = video_temporal_size
        self.image_token = image_token
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)
        self.image_token_id = self._token_id(image_token)
        patch = self.patch_size
        for width, height in self.image_grid_pinpoints:
            if width % patch or height % patch:
                raise ValueError(f"image_grid_pinpoints: {width}x{height} is not a multiple of patch size {patch}")
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of patch size {patch}")

    # ---------------------------------------------------------------- geometry and token counts (no pixels needed)
    @property
    def patch_size(self) -> int:
        """Encoder patch side in pixels (14)."""
        return int(self.image_processor.patch_size)

    @property
    def video_grid(self) -> int:
        """Patch grid side of each raw-video frame / mosaic (576 / 16 = 36 -> 504 px at patch 14)."""
        return self.video_square_size // self.video_patch_size

    def image_target_size(self, *, width: int, height: int) -> tuple[int, int]:
        """(height, width) in pixels the encoder sees for an image of `width` x `height` under `image_aspect_ratio`."""
        if self.image_aspect_ratio == "anyres":
            canvas_width, canvas_height = select_best_resolution((width, height), self.image_grid_pinpoints)
            return canvas_height, canvas_width
        if self.image_aspect_ratio == "native":
            processor = self.image_processor
            return compute_native_size(
                height,
                width,
                patch_size=self.patch_size,
                min_pixels=processor.min_pixels,
                max_pixels=processor.max_pixels,
            )
        return self.image_size, self.image_size

    def count_image_tokens(self, *, width: int, height: int) -> int:
        """Visual tokens of one image (= ViT patches; 1 patch -> 1 LLM token)."""
        out_height, out_width = self.image_target_size(width=width, height=height)
        return (out_height // self.patch_size) * (out_width // self.patch_size)

    def count_video_tokens(self, *, num_frames: int | None = None, grid: int | None = None) -> int:
        """Visual tokens of one video: frames * grid**2 (8 * 36 * 36 = 10368 by default)."""
        num_frames = self.num_video_frames if num_frames is None else num_frames
        grid = self.video_grid if grid is None else grid
        return num_frames * grid * grid

    # ------------------------------------------------------------------------------------------- pixel inputs
    def preprocess_image(self, image: ImageInput) -> torch.Tensor:
        """One image -> float32 [3, H, W] normalised, H and W multiples of 14 (size from `image_target_size`)."""
        pil = _load_image(image)
        processor = self.image_processor
        if self.image_aspect_ratio == "anyres":
            canvas = resize_and_pad_image(pil, select_best_resolution(pil.size, self.image_grid_pinpoints))
            out = processor(canvas, resize_mode="native", do_resize=False, return_tensors="pt")
        elif self.image_aspect_ratio == "native":
            out = processor(pil, resize_mode="native", do_resize=True, return_tensors="pt")
        elif self.image_aspect_ratio == "pad":
            size = {"height": self.image_size, "width": self.image_size}
            out = processor(pil, resize_mode="pad_to_square", do_resize=True, size=size, return_tensors="pt")
        else:
            size = {"height": self.image_size, "width": self.image_size}
            out = processor(
                pil, resize_mode="clip", do_resize=True, do_center_crop=False, size=size, return_tensors="pt"
            )
        return out["pixel_values"][0]

    def preprocess_video(self, video: VideoInput) -> tuple[torch.Tensor, torch.Tensor]:
        """One video -> (pixel_values float32 [3, T, S, S], patch_positions int64 [T * g * g, 3]), S = g * 14.

        `VideoFrames` with positions: a codec video; g = the positions' mosaic grid, each frame padded to a square
        and resized to S (576 -> 504 for the upstream geometry). Without positions: uniform frames on the
        processor's grid with t = linspace(0, 63, T). A path: decoded now (`video_mode`).
        """
        if isinstance(video, (str, Path)):
            if self.video_mode == "codec":
                video = select_codec_video(
                    video,
                    num_images=self.num_video_frames,
                    square_size=self.video_square_size,
                    patch_size=self.video_patch_size,
                    num_frames=self.video_temporal_size,
                )
            else:
                video = VideoFrames(frames=read_uniform_frames(video, num_frames=self.num_video_frames))
        if not isinstance(video, VideoFrames):
            raise ValueError(f"a video must be VideoFrames or a path to a video file, got {type(video).__name__}")
        num_frames = len(video.frames)
        if num_frames == 0:
            raise ValueError("a video needs at least one frame")
        if video.positions_thw is not None:
            positions, grid = load_positions(video.positions_thw, num_frames=num_frames)
        else:
            grid = self.video_grid
            positions = uniform_positions(num_frames=num_frames, grid=grid, temporal_size=self.video_temporal_size)
        side = grid * self.patch_size
        frames = [_load_image(frame) for frame in video.frames]
        out = self.image_processor(
            frames,
            resize_mode="pad_to_square",
            do_resize=True,
            size={"height": side, "width": side},
            return_tensors="pt",
        )
        pixel_values = out["pixel_values"].permute(1, 0, 2, 3).contiguous()  # (T, 3, S, S) -> (3, T, S, S)
        return pixel_values, torch.from_numpy(positions)

    # --------------------------------------------------------------------------------------------- text
    def render_prompt(self, conversation: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = False) -> str:
        """The prompt string with `<image>` / `<video>` markers (not yet expanded)."""
        segments = self._segments(conversation, add_generation_prompt=add_generation_prompt)
        return "".join(text for text, _ in segments)

    def _segments(self, conversation: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool) -> list:
        _, turns = normalize_conversation(conversation)
        for index, (_, text) in enumerate(turns):
            for token in _RESERVED_TOKENS + (self.image_token,):
                if token in text:
                    raise ValueError(f"conversation turn {index}: text contains the reserved token {token!r}")
        return render_segments(
            conversation,
            template=self.template,
            system_prompt=self.system_prompt,
            add_generation_prompt=add_generation_prompt,
            eos_token=self.tokenizer.eos_token or "<|endoftext|>",
        )

    def process_conversation(
        self,
        conversation: Sequence[Mapping[str, Any]],
        *,
        images: Sequence[ImageInput] | None = None,
        videos: Sequence[VideoInput] | None = None,
        add_generation_prompt: bool = False,
        return_labels: bool = True,
    ) -> dict[str, Any]:
        """One conversation -> model inputs for one sample (not padded).

        `<image>` markers take `images` in order; `<video>` markers take `videos` in order, each written as T
        `<image>` lines ("\\n"-joined). Counts must match exactly.

        Returns:
            dict with `input_ids` int64 [L], `attention_mask` int64 [L] (ones), `labels` int64 [L] (when
            `return_labels`), `pixel_values` list of [3, H, W] / [3, T, S, S], `patch_positions` list of None /
            int64 [N, 3], `num_visual_tokens` int (= number of placeholders in `input_ids`).
        """
        images, videos = (
            _as_list(images, single=(str, Path, PIL.Image.Image, np.ndarray)),
            _as_list(videos, single=(str, Path, VideoFrames)),
        )
        segments = self._segments(conversation, add_generation_prompt=add_generation_prompt)
        text = "".join(piece for piece, _ in segments)
        num_image_markers, num_video_markers = text.count(IMAGE_MARKER), text.count(VIDEO_MARKER)
        if num_image_markers != len(images) or num_video_markers != len(videos):
            raise ValueError(
                f"the conversation has {num_image_markers} {IMAGE_MARKER} and {num_video_markers} {VIDEO_MARKER} "
                f"markers but {len(images)} images and {len(videos)} videos were given"
            )

        # Visual items in text order, each with its per-marker token counts (a video: one count per frame).
        items: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        marker_tokens: list[int] = []
        image_iter, video_iter = iter(images), iter(videos)
        for marker in _MARKER_PATTERN.findall(text):
            if marker == IMAGE_MARKER:
                pixels = self.preprocess_image(next(image_iter))
                items.append((pixels, None))
                marker_tokens.append((pixels.shape[-2] // self.patch_size) * (pixels.shape[-1] // self.patch_size))
            else:
                pixels, positions = self.preprocess_video(next(video_iter))
                items.append((pixels, positions))
                per_frame = (pixels.shape[-2] // self.patch_size) * (pixels.shape[-1] // self.patch_size)
                marker_tokens.extend([per_frame] * pixels.shape[1])

        # A video's frames are T "<image>" lines; after this every marker is one frame/image. Segments are in text
        # order and `sub` goes left to right, so the k-th <video> gets the k-th video's frame count.
        frame_counts = iter([pixels.shape[1] for pixels, positions in items if positions is not None])
        pieces = [
            (_VIDEO_PATTERN.sub(lambda _: "\n".join([IMAGE_MARKER] * next(frame_counts)), piece), supervised)
            for piece, supervised in segments
        ]

        input_ids, labels = self._tokenize(pieces, marker_tokens)
        ids = torch.tensor(input_ids, dtype=torch.long)
        result: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "pixel_values": [pixels for pixels, _ in items],
            "patch_positions": [positions for _, positions in items],
            "num_visual_tokens": int(sum(marker_tokens)),
        }
        if return_labels:
            result["labels"] = torch.tensor(labels, dtype=torch.long)
        return result

    def _tokenize(self, pieces: list[tuple[str, bool]], marker_tokens: list[int]) -> tuple[list[int], list[int]]:
        """Tokenises segments separately (clean label boundaries) with each marker as one placeholder token, then
        expands the k-th placeholder to `marker_tokens[k]` copies."""
        texts = [piece.replace(IMAGE_MARKER, self.image_token) for piece, _ in pieces]
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        input_ids: list[int] = []
        labels: list[int] = []
        marker_index = 0
        for ids, (_, supervised) in zip(encoded, pieces, strict=True):
            for token in ids:
                if token == self.image_token_id:
                    count = marker_tokens[marker_index]
                    marker_index += 1
                    input_ids.extend([token] * count)
                    labels.extend([IGNORE_INDEX] * count)
                else:
                    input_ids.append(token)
                    labels.append(token if supervised else IGNORE_INDEX)
        if marker_index != len(marker_tokens):
            raise ValueError(
                f"found {marker_index} placeholder tokens after tokenisation, expected {len(marker_tokens)}"
            )
        return input_ids, labels

    # ------------------------------------------------------------------------------------------- batch call
    def __call__(
        self,
        conversations: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]],
        images: Sequence[ImageInput] | Sequence[Sequence[ImageInput]] | None = None,
        videos: Sequence[VideoInput] | Sequence[Sequence[VideoInput]] | None = None,
        *,
        add_generation_prompt: bool = False,
        return_labels: bool | None = None,
        padding_side: str | None = None,
    ) -> BatchFeature:
        """One conversation (list of turns) or a batch (list of conversations) -> padded model inputs.

        `images` / `videos`: for one conversation a list; for a batch a list of per-conversation lists (or None).
        `return_labels` defaults to `not add_generation_prompt`. Padding uses `padding_side` (default: the
        tokenizer's; use "left" for batched generation) with `pad_token_id` and labels -100.

        Returns:
            `BatchFeature` with `input_ids` int64 [B, L], `attention_mask` int64 [B, L], `labels` [B, L] (optional),
            `pixel_values` (flat list over the batch, text order), `patch_positions` (aligned list).
        """
        batched = bool(conversations) and not isinstance(conversations[0], Mapping)
        batch = list(conversations) if batched else [conversations]
        per_images = list(images) if batched and images is not None else [images] * (1 if not batched else len(batch))
        per_videos = list(videos) if batched and videos is not None else [videos] * (1 if not batched else len(batch))
        if len(per_images) != len(batch) or len(per_videos) != len(batch):
            raise ValueError(f"images/videos must have one entry per conversation ({len(batch)})")
        if return_labels is None:
            return_labels = not add_generation_prompt
        samples = [
            self.process_conversation(
                conversation,
                images=sample_images,
                videos=sample_videos,
                add_generation_prompt=add_generation_prompt,
                return_labels=return_labels,
            )
            for conversation, sample_images, sample_videos in zip(batch, per_images, per_videos, strict=True)
        ]
        return BatchFeature(data=self.pad(samples, padding_side=padding_side), skip_tensor_conversion=None)

    def pad(self, samples: Sequence[Mapping[str, Any]], *, padding_side: str | None = None) -> dict[str, Any]:
        """Pads per-sample outputs of `process_conversation` into a batch (see `__call__`)."""
        side = padding_side or getattr(self.tokenizer, "padding_side", "right")
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has no pad token")
        length = max(len(sample["input_ids"]) for sample in samples)
        keys = [("input_ids", pad_id), ("attention_mask", 0)] + (
            [("labels", IGNORE_INDEX)] if "labels" in samples[0] else []
        )
        out: dict[str, Any] = {}
        for key, value in keys:
            rows = []
            for sample in samples:
                tensor = sample[key]
                filler = torch.full((length - len(tensor),), value, dtype=tensor.dtype)
                rows.append(torch.cat([filler, tensor]) if side == "left" else torch.cat([tensor, filler]))
            out[key] = torch.stack(rows)
        out["pixel_values"] = [pixels for sample in samples for pixels in sample["pixel_values"]]
        out["patch_positions"] = [positions for sample in samples for positions in sample["patch_positions"]]
        return out

    # -------------------------------------------------------------------------------------------- helpers
    def apply_chat_template(
        self,
        conversation: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = False,
        tokenize: bool = False,
        **kwargs: Any,
    ) -> str:
        """The prompt string (markers not expanded), for callers that expect the transformers method; the format is
        code, not a Jinja template. Tokenised inputs come from `__call__`, which also expands the placeholders."""
        if tokenize:
            raise ValueError("LlavaOVProcessor.apply_chat_template renders text only: call the processor to tokenise")
        return self.render_prompt(conversation, add_generation_prompt=add_generation_prompt)

    def _token_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no token {token!r}")
        return int(token_id)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        """`tokenizer.decode`."""
        return self.tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        """`tokenizer.batch_decode`."""
        return self.tokenizer.batch_decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "patch_positions"]


def _as_list(value: Any, *, single: tuple[type, ...]) -> list[Any]:
    """None -> [], one input (a path, an image, a video) -> [it], a sequence -> list."""
    if value is None:
        return []
    if isinstance(value, single):
        return [value]
    return list(value)


def _load_image(image: ImageInput) -> PIL.Image.Image:
    """A path, PIL image or uint8 [H, W, 3] array -> an RGB PIL image (paths are opened and decoded here)."""
    if isinstance(image, (str, Path)):
        with PIL.Image.open(image) as opened:
            return opened.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"an image array must be uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
        return PIL.Image.fromarray(image)
    if isinstance(image, PIL.Image.Image):
        return image.convert("RGB")
    raise ValueError(f"an image must be a path, a PIL image or a uint8 array, got {type(image).__name__}")


__all__ = ["IGNORE_INDEX", "IMAGE_ASPECT_RATIOS", "LlavaOVProcessor"]
