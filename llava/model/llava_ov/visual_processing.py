"""Geometry and pixels of the LLaVA-OV visual inputs: which size each image / video frame is encoded at, how many
visual tokens that costs, and the normalised pixel tensors (spec: shared/specs/llava_model_and_training.md sections
3.1-3.5). No text here: the prompt belongs to `chat_format.py`, the batch call to `processing_llava_ov.py`.

Contract: one ViT patch of `patch_size` pixels = one LLM placeholder token, so an item's token count is
(H / patch) * (W / patch) per image or frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_utils import select_best_resolution

from ..onevision_encoder.image_processing_onevision_encoder import compute_native_size
from .anyres import DEFAULT_IMAGE_GRID_PINPOINTS, resize_and_pad_image
from .video_inputs import VideoFrames, load_positions, read_uniform_frames, select_codec_video, uniform_positions

logger = logging.getLogger(__name__)

ImageAspectRatio = Literal["anyres", "native", "pad", "square"]
IMAGE_ASPECT_RATIOS: tuple[str, ...] = ("anyres", "native", "pad", "square")
VIDEO_MODES: tuple[str, ...] = ("codec", "uniform")

ImageInput = Any  # PIL image, uint8 array [H, W, 3], or a path to an image file
VideoInput = Any  # VideoFrames, or a path to a video file (decoded on the fly)


def anyres_canvas(*, width: int, height: int, pinpoints: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The `(width, height)` pinpoint canvas an image of `width` x `height` is placed on (upstream anyres).

    transformers' `select_best_resolution` is upstream LLaVA's rule (most kept resolution, then least waste, first
    candidate on a full tie); it takes and returns (height, width) while LLaVA's pinpoints are (width, height).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"anyres: image size must be positive, got {width}x{height}")
    if not pinpoints:
        raise ValueError("anyres: image_grid_pinpoints is empty")
    canvas_height, canvas_width = select_best_resolution((height, width), [(h, w) for w, h in pinpoints])
    return int(canvas_width), int(canvas_height)


@dataclass(frozen=True, kw_only=True)
class VisualPreprocessor:
    """Sizes, token counts and pixels of images and videos for one processor configuration.

    Fields: the `LlavaOVProcessor` arguments of the same names (see its docstring, which also holds the defaults) and
    its image processor, which does the rescale/normalise and the pad/square resizes.
    """

    image_processor: Any
    image_aspect_ratio: str
    image_grid_pinpoints: Sequence[Sequence[int]] | None
    image_size: int
    num_video_frames: int
    video_mode: str
    video_square_size: int
    video_patch_size: int
    video_temporal_size: int

    def __post_init__(self) -> None:
        if self.image_aspect_ratio not in IMAGE_ASPECT_RATIOS:
            raise ValueError(
                f"image_aspect_ratio must be one of {IMAGE_ASPECT_RATIOS}, got {self.image_aspect_ratio!r}"
            )
        if self.video_mode not in VIDEO_MODES:
            raise ValueError(f"video_mode must be one of {VIDEO_MODES}, got {self.video_mode!r}")
        if self.video_square_size % self.video_patch_size:
            raise ValueError(
                f"video_square_size {self.video_square_size} is not a multiple of {self.video_patch_size}"
            )
        pinpoints = [list(p) for p in (self.image_grid_pinpoints or DEFAULT_IMAGE_GRID_PINPOINTS)]
        object.__setattr__(self, "image_grid_pinpoints", pinpoints)  # frozen: normalised once here
        for width, height in pinpoints:
            if width % self.patch_size or height % self.patch_size:
                raise ValueError(
                    f"image_grid_pinpoints: {width}x{height} is not a multiple of patch size {self.patch_size}"
                )
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch size {self.patch_size}")

    @property
    def patch_size(self) -> int:
        """Encoder patch side in pixels (14)."""
        return int(self.image_processor.patch_size)

    # ------------------------------------------------------------------------ geometry (no pixels needed)
    @property
    def video_grid(self) -> int:
        """Patch grid side of each raw-video frame / mosaic (576 / 16 = 36 -> 504 px at patch 14)."""
        return self.video_square_size // self.video_patch_size

    def image_target_size(self, *, width: int, height: int) -> tuple[int, int]:
        """(height, width) in pixels the encoder sees for an image of `width` x `height`."""
        if self.image_aspect_ratio == "anyres":
            pinpoints = self.image_grid_pinpoints
            canvas_width, canvas_height = anyres_canvas(width=width, height=height, pinpoints=pinpoints)
            return canvas_height, canvas_width
        if self.image_aspect_ratio == "native":
            return compute_native_size(
                height,
                width,
                patch_size=self.patch_size,
                min_pixels=self.image_processor.min_pixels,
                max_pixels=self.image_processor.max_pixels,
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

    def tokens_per_frame(self, pixel_values: torch.Tensor) -> int:
        """Placeholders of one image [3, H, W] or of one frame of a video [3, T, H, W]."""
        return (pixel_values.shape[-2] // self.patch_size) * (pixel_values.shape[-1] // self.patch_size)

    # ------------------------------------------------------------------------------------------- pixels
    def preprocess_image(self, image: ImageInput) -> torch.Tensor:
        """One image -> float32 [3, H, W] normalised, H and W multiples of the patch (size: `image_target_size`)."""
        pil = load_image(image)
        processor = self.image_processor
        if self.image_aspect_ratio == "anyres":
            width, height = pil.size
            canvas = anyres_canvas(width=width, height=height, pinpoints=self.image_grid_pinpoints)
            padded = resize_and_pad_image(pil, canvas)
            out = processor(padded, resize_mode="native", do_resize=False, return_tensors="pt")
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
        """One video -> (pixel_values float32 [3, T, S, S], patch_positions int64 [T * g * g, 3]), S = g * patch.

        `VideoFrames` with positions: a codec video; g = the positions' mosaic grid, each frame padded to a square
        and resized to S (576 -> 504 for the upstream geometry). Without positions: uniform frames on the
        processor's grid with t = linspace(0, 63, T). A path: decoded now (`video_mode`).
        """
        if isinstance(video, (str, Path)):
            video = self._decode_video(video)
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
        out = self.image_processor(
            [load_image(frame) for frame in video.frames],
            resize_mode="pad_to_square",
            do_resize=True,
            size={"height": side, "width": side},
            return_tensors="pt",
        )
        pixel_values = out["pixel_values"].permute(1, 0, 2, 3).contiguous()  # (T, 3, S, S) -> (3, T, S, S)
        return pixel_values, torch.from_numpy(positions)

    def _decode_video(self, path: str | Path) -> VideoFrames:
        if self.video_mode == "codec":
            return select_codec_video(
                path,
                num_images=self.num_video_frames,
                square_size=self.video_square_size,
                patch_size=self.video_patch_size,
                num_frames=self.video_temporal_size,
            )
        return VideoFrames(frames=read_uniform_frames(path, num_frames=self.num_video_frames))


def load_image(image: ImageInput) -> PIL.Image.Image:
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


__all__ = [
    "IMAGE_ASPECT_RATIOS",
    "VIDEO_MODES",
    "VisualPreprocessor",
    "anyres_canvas",
    "load_image",
]
