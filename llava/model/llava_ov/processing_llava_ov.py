"""`LlavaOVProcessor`: the transformers processor of LLaVA-OV (spec: shared/specs/llava_model_and_training.md
sections 3-4 and 9.3; contract: one placeholder token per patch).

The standard VLM calls of the transformers ecosystem:

```python
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)        # text with <image>/<video>
inputs = processor(text=prompt, images=image, videos=video, return_tensors="pt")
inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
```
and, for training, `processor(conversations=..., images=..., videos=...)` / `process_conversation`, which also return
`labels` (assistant content + `<|im_end|>` only).

Every `<image>` marker becomes exactly N placeholder tokens (`<|image_pad|>`), N = (H / 14) * (W / 14) of that image
or video frame; a video is ONE vision item whose T frames are written as T `<image>` lines. The jobs are split:
`visual_processing.py` (sizes, token counts, pixels), `chat_format.py` (prompt and marker rules, tokenisation with
placeholders), `batching.py` (padding); this module routes inputs between them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .batching import as_list, pad_samples, visuals_per_prompt
from .chat_format import (
    CHAT_TEMPLATES,
    DEFAULT_SYSTEM_PROMPT,
    IGNORE_INDEX,
    IMAGE_MARKER,
    VIDEO_MARKER,
    content_visuals,
    count_markers,
    expand_video_markers,
    markers_in_order,
    normalize_conversation,
    render_segments,
    tokenize_with_placeholders,
)
from .video_inputs import VideoFrames
from .visual_processing import IMAGE_ASPECT_RATIOS, ImageInput, VideoInput, VisualPreprocessor

logger = logging.getLogger(__name__)

# Control tokens that must not come from user data: they would forge turns or placeholders.
_RESERVED_TOKENS = ("<|im_start|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>")
_SINGLE_IMAGE = (str, Path, PIL.Image.Image, np.ndarray)
_SINGLE_VIDEO = (str, Path, VideoFrames)
_VISUAL_FIELDS = (
    "image_aspect_ratio",
    "image_grid_pinpoints",
    "image_size",
    "num_video_frames",
    "video_mode",
    "video_square_size",
    "video_patch_size",
    "video_temporal_size",
)


class LlavaOVProcessor(ProcessorMixin):
    r"""
    Tokenizer (Qwen, with `<|image_pad|>`) + `OneVisionEncoderImageProcessor` (rescale/normalise and the pad/square
    resizes; sizes are decided by `VisualPreprocessor`).

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
        self.template = template
        self.system_prompt = system_prompt
        self.image_aspect_ratio = image_aspect_ratio
        self.image_grid_pinpoints = image_grid_pinpoints
        self.image_size = image_size
        self.num_video_frames = num_video_frames
        self.video_mode = video_mode
        self.video_square_size = video_square_size
        self.video_patch_size = video_patch_size
        self.video_temporal_size = video_temporal_size
        self.image_token = image_token
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)
        self.image_grid_pinpoints = self.visual.image_grid_pinpoints  # validates the geometry too
        self.image_token_id = self._token_id(image_token)

    # ------------------------------------------------------------------ geometry and pixels (visual_processing)
    @property
    def visual(self) -> VisualPreprocessor:
        """Sizes, token counts and pixels for the current settings (built per use: settings may be changed)."""
        settings = {name: getattr(self, name) for name in _VISUAL_FIELDS}
        return VisualPreprocessor(image_processor=self.image_processor, **settings)

    @property
    def patch_size(self) -> int:
        """Encoder patch side in pixels (14)."""
        return int(self.image_processor.patch_size)

    # Shortcuts to `self.visual` for callers that hold only the processor (data costs, the demo's token count).
    @property
    def video_grid(self) -> int:
        return self.visual.video_grid

    def image_target_size(self, *, width: int, height: int) -> tuple[int, int]:
        return self.visual.image_target_size(width=width, height=height)

    def count_image_tokens(self, *, width: int, height: int) -> int:
        return self.visual.count_image_tokens(width=width, height=height)

    def count_video_tokens(self, *, num_frames: int | None = None, grid: int | None = None) -> int:
        return self.visual.count_video_tokens(num_frames=num_frames, grid=grid)

    def preprocess_image(self, image: ImageInput) -> torch.Tensor:
        """One image -> float32 [3, H, W] (see `VisualPreprocessor.preprocess_image`)."""
        return self.visual.preprocess_image(image)

    def preprocess_video(self, video: VideoInput) -> tuple[torch.Tensor, torch.Tensor]:
        """One video -> (float32 [3, T, S, S], int64 [T * g * g, 3]) (see `VisualPreprocessor.preprocess_video`)."""
        return self.visual.preprocess_video(video)

    # ------------------------------------------------------------------------------ text (chat_format)
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

    def _encode(
        self,
        segments: Sequence[tuple[str, bool]],
        *,
        images: Sequence[ImageInput],
        videos: Sequence[VideoInput],
    ) -> dict[str, Any]:
        """Marked-up text segments + their visuals -> one unpadded sample (labels from the segment flags)."""
        text = "".join(piece for piece, _ in segments)
        num_image_markers, num_video_markers = count_markers(text)
        if num_image_markers != len(images) or num_video_markers != len(videos):
            raise ValueError(
                f"the text has {num_image_markers} {IMAGE_MARKER} and {num_video_markers} {VIDEO_MARKER} "
                f"markers but {len(images)} images and {len(videos)} videos were given"
            )
        visual = self.visual
        # Visual items in text order, each with its per-marker token counts (a video: one count per frame).
        items: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        marker_tokens: list[int] = []
        image_iter, video_iter = iter(images), iter(videos)
        for marker in markers_in_order(text):
            if marker == IMAGE_MARKER:
                pixels = visual.preprocess_image(next(image_iter))
                items.append((pixels, None))
                marker_tokens.append(visual.tokens_per_frame(pixels))
            else:
                pixels, positions = visual.preprocess_video(next(video_iter))
                items.append((pixels, positions))
                marker_tokens.extend([visual.tokens_per_frame(pixels)] * pixels.shape[1])
        # A video's frames are T "<image>" lines; segments are in text order, so the k-th <video> of the text takes
        # the k-th video's frame count.
        frame_counts = [pixels.shape[1] for pixels, positions in items if positions is not None]
        pieces = []
        for piece, supervised in segments:
            count = piece.count(VIDEO_MARKER)
            pieces.append((expand_video_markers(piece, frame_counts[:count]), supervised))
            frame_counts = frame_counts[count:]
        input_ids, labels = tokenize_with_placeholders(
            self.tokenizer, pieces, image_token=self.image_token, marker_tokens=marker_tokens
        )
        ids = torch.tensor(input_ids, dtype=torch.long)
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.tensor(labels, dtype=torch.long),
            "pixel_values": [pixels for pixels, _ in items],
            "patch_positions": [positions for _, positions in items],
            "num_visual_tokens": int(sum(marker_tokens)),
        }

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
        segments = self._segments(conversation, add_generation_prompt=add_generation_prompt)
        sample = self._encode(
            segments, images=as_list(images, single=_SINGLE_IMAGE), videos=as_list(videos, single=_SINGLE_VIDEO)
        )
        if not return_labels:
            del sample["labels"]
        return sample

    # ------------------------------------------------------------------------------------------ batch calls
    def __call__(
        self,
        images: ImageInput | Sequence[Any] | None = None,
        text: str | Sequence[str] | None = None,
        videos: VideoInput | Sequence[Any] | None = None,
        *,
        conversations: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]] | None = None,
        add_generation_prompt: bool = False,
        return_labels: bool | None = None,
        padding_side: str | None = None,
        padding: bool | str = True,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """The transformers VLM call, or the conversation call used for training and the front ends.

        * `processor(text=..., images=..., videos=...)`: `text` is a prompt (or a list of prompts) with `<image>` /
          `<video>` markers, e.g. from `apply_chat_template`; `images` / `videos` are one item, a flat list taken by
          the markers in order across the batch, or one list per prompt. No labels.
        * `processor(conversations=..., images=..., videos=...)`: one conversation (list of turns) or a batch of
          them rendered with the chat format; `images` / `videos` for one conversation a list, for a batch one list
          (or None) per conversation. `return_labels` defaults to `not add_generation_prompt`.

        Padding uses `padding_side` (default: the tokenizer's; "left" for batched generation) with `pad_token_id`
        (labels -100).

        Returns:
            `BatchFeature` with `input_ids` int64 [B, L], `attention_mask` int64 [B, L], `labels` [B, L] (optional),
            `pixel_values` (flat list over the batch, text order), `patch_positions` (aligned list).
        """
        if kwargs:
            raise TypeError(f"LlavaOVProcessor got unsupported arguments {sorted(kwargs)}")
        if return_tensors not in ("pt", None):
            raise ValueError(f"LlavaOVProcessor returns torch tensors (return_tensors='pt'), got {return_tensors!r}")
        if padding not in (True, "longest"):
            raise ValueError(f"LlavaOVProcessor pads to the longest sample (padding=True), got {padding!r}")
        if conversations is not None:
            if text is not None:
                raise ValueError("pass either text= (prompts with markers) or conversations=, not both")
            samples = self._conversation_samples(
                conversations,
                images=images,
                videos=videos,
                add_generation_prompt=add_generation_prompt,
                return_labels=not add_generation_prompt if return_labels is None else return_labels,
            )
        else:
            if _looks_like_conversation(images):
                raise TypeError("conversations are passed by keyword: processor(conversations=..., images=...)")
            if text is None:
                raise ValueError("LlavaOVProcessor needs text= (prompts with markers) or conversations=")
            samples = self._text_samples(text, images=images, videos=videos)
        return BatchFeature(data=self.pad(samples, padding_side=padding_side), skip_tensor_conversion=None)

    def _conversation_samples(
        self, conversations: Any, *, images: Any, videos: Any, add_generation_prompt: bool, return_labels: bool
    ) -> list[dict[str, Any]]:
        batched = bool(conversations) and not isinstance(conversations[0], Mapping)
        batch = list(conversations) if batched else [conversations]
        per_images = list(images) if batched and images is not None else [images] * len(batch)
        per_videos = list(videos) if batched and videos is not None else [videos] * len(batch)
        if len(per_images) != len(batch) or len(per_videos) != len(batch):
            raise ValueError(f"images/videos must have one entry per conversation ({len(batch)})")
        return [
            self.process_conversation(
                conversation,
                images=sample_images,
                videos=sample_videos,
                add_generation_prompt=add_generation_prompt,
                return_labels=return_labels,
            )
            for conversation, sample_images, sample_videos in zip(batch, per_images, per_videos, strict=True)
        ]

    def _text_samples(self, text: str | Sequence[str], *, images: Any, videos: Any) -> list[dict[str, Any]]:
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(prompt, str) for prompt in texts):
            raise ValueError("text must be a string or a non-empty list of strings")
        for index, prompt in enumerate(texts):
            if self.image_token in prompt:
                raise ValueError(
                    f"text[{index}] contains the placeholder {self.image_token!r}: write {IMAGE_MARKER} / "
                    f"{VIDEO_MARKER} markers, the processor expands them"
                )
        counts = [count_markers(prompt) for prompt in texts]
        per_images = visuals_per_prompt(images, [n for n, _ in counts], single=_SINGLE_IMAGE, kind="images")
        per_videos = visuals_per_prompt(videos, [n for _, n in counts], single=_SINGLE_VIDEO, kind="videos")
        samples = []
        for prompt, sample_images, sample_videos in zip(texts, per_images, per_videos, strict=True):
            sample = self._encode([(prompt, False)], images=sample_images, videos=sample_videos)
            del sample["labels"]
            samples.append(sample)
        return samples

    def pad(self, samples: Sequence[Mapping[str, Any]], *, padding_side: str | None = None) -> dict[str, Any]:
        """Pads per-sample outputs of `process_conversation` into a batch (see `__call__`)."""
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has no pad token")
        side = padding_side or getattr(self.tokenizer, "padding_side", "right")
        out: dict[str, Any] = pad_samples(samples, pad_token_id=pad_id, padding_side=side)
        out["pixel_values"] = [pixels for sample in samples for pixels in sample["pixel_values"]]
        out["patch_positions"] = [positions for sample in samples for positions in sample["patch_positions"]]
        return out

    def apply_chat_template(
        self,
        conversation: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]],
        chat_template: str | None = None,
        *,
        add_generation_prompt: bool = False,
        tokenize: bool = False,
        return_dict: bool = False,
        return_tensors: str | None = "pt",
        padding_side: str | None = None,
        **kwargs: Any,
    ) -> str | list[str] | BatchFeature | torch.Tensor:
        """transformers' `apply_chat_template` for one conversation or a batch of them.

        Messages use `{"role", "content"}` with content a string or parts `{"type": "text", "text"}`,
        `{"type": "image", "image" | "path" | "url": PIL image / local path}`, `{"type": "video", "video" | "path" |
        "url": local path / VideoFrames}` (upstream `{"from", "value"}` turns work too). The format is code
        (`chat_format.py`), not a Jinja template, so `chat_template` must be None.

        Returns:
            `tokenize=False`: the prompt string(s) with `<image>` / `<video>` markers. `tokenize=True`: the
            `BatchFeature` of `processor(text=..., images=..., videos=...)` with `return_dict=True`, else its
            `input_ids`.
        """
        if chat_template is not None:
            raise ValueError("LlavaOVProcessor renders ChatML in code (chat_format.py); chat_template must be None")
        if kwargs:
            raise TypeError(f"apply_chat_template got unsupported arguments {sorted(kwargs)}")
        batched = bool(conversation) and not isinstance(conversation[0], Mapping)
        conversations = list(conversation) if batched else [conversation]
        prompts = [self.render_prompt(item, add_generation_prompt=add_generation_prompt) for item in conversations]
        if not tokenize:
            return prompts if batched else prompts[0]
        visuals = [content_visuals(item) for item in conversations]
        out = self(
            text=prompts,
            images=[images for images, _ in visuals],
            videos=[videos for _, videos in visuals],
            padding_side=padding_side,
            return_tensors=return_tensors,
        )
        return out if return_dict else out["input_ids"]

    # -------------------------------------------------------------------------------------------- helpers
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


def _looks_like_conversation(value: Any) -> bool:
    """True for a list of turns (or of conversations): the old positional call `processor(conversation, ...)`."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        return False
    first = value[0]
    if isinstance(first, Sequence) and not isinstance(first, (str, bytes)) and first:
        first = first[0]
    return isinstance(first, Mapping) and any(key in first for key in ("from", "role"))


__all__ = ["IGNORE_INDEX", "IMAGE_ASPECT_RATIOS", "LlavaOVProcessor"]
