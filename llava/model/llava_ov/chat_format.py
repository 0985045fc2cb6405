"""The prompt format of LLaVA-OV: ChatML (`qwen_1_5`) and the stage-1 `plain` template
(spec: shared/specs/llava_model_and_training.md section 4).

A conversation is rendered into text segments, each flagged as supervised or not, so the processor can tokenise the
segments separately and label exactly the assistant content and its closing `<|im_end|>`:

```
<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
<|im_start|>user\n<image>\nquestion<|im_end|>\n
<|im_start|>assistant\n[answer<|im_end|>]\n          (brackets: the supervised segment)
```
Visual items appear as `<image>` / `<video>` markers in user text; the processor replaces them by placeholder tokens.

This module is the ONE owner of the marker rules, used by the processor, the data pipeline (`llava.data.samples`),
the eval plugin and the demo: one `<image>` per image, one `<video>` per video, a marker opens its own line in front
of the user's text (`marker_prefix`), and a video of T frames is written as T `"\\n"`-joined `<image>` lines
(`frame_lines`): the codec JSONL (`cv_reader.assets.frame_lines`, which cannot import llava) writes that same block
on disk and `collapse_frame_lines` turns it back into one `<video>`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
IGNORE_INDEX = -100
IMAGE_MARKER = "<image>"
VIDEO_MARKER = "<video>"
ChatTemplate = Literal["qwen_1_5", "plain"]
CHAT_TEMPLATES: tuple[str, ...] = ("qwen_1_5", "plain")


def frame_lines(num_frames: int) -> str:
    """A video of `num_frames` frames as the prompt writes it: `num_frames` `<image>` markers joined by newlines
    (spec section 2.4: `"<image>\\n" * 8`, no separators). Same text as `cv_reader.assets.frame_lines`."""
    if num_frames <= 0:
        raise ValueError(f"frame_lines: a video needs at least one frame, got {num_frames}")
    return "\n".join([IMAGE_MARKER] * num_frames)


def marker_prefix(*, num_images: int = 0, num_videos: int = 0) -> str:
    """The markers put in front of a user text that has none: videos first, then images, each on its own line."""
    return f"{VIDEO_MARKER}\n" * num_videos + f"{IMAGE_MARKER}\n" * num_images


def count_markers(text: str) -> tuple[int, int]:
    """(number of `<image>`, number of `<video>`) markers in `text`."""
    return text.count(IMAGE_MARKER), text.count(VIDEO_MARKER)


def strip_markers(text: str) -> str:
    """`text` without its visual markers (e.g. to count or show the text alone)."""
    return text.replace(IMAGE_MARKER, "").replace(VIDEO_MARKER, "")


def expand_video_markers(text: str, frame_counts: Sequence[int]) -> str:
    """Writes the k-th `<video>` of `text` as `frame_lines(frame_counts[k])`; every marker is then one frame/image.

    Raises:
        ValueError: the number of `<video>` markers differs from `len(frame_counts)`.
    """
    pieces = text.split(VIDEO_MARKER)
    if len(pieces) - 1 != len(frame_counts):
        raise ValueError(f"{len(pieces) - 1} {VIDEO_MARKER} markers for {len(frame_counts)} videos")
    out = [pieces[0]]
    for count, piece in zip(frame_counts, pieces[1:], strict=True):
        out.extend([frame_lines(count), piece])
    return "".join(out)


def collapse_frame_lines(text: str, *, num_frames: int) -> str | None:
    """The inverse of `expand_video_markers` for one video: the first `frame_lines(num_frames)` block of `text`
    becomes one `<video>`. Returns None when `text` has no such block (callers decide what that means)."""
    block = frame_lines(num_frames)
    start = text.find(block)
    if start < 0:
        return None
    end = start + len(block)
    # A longer run of <image> lines is another frame count, not this video.
    if text.startswith("\n" + IMAGE_MARKER, end) or text[:start].endswith(IMAGE_MARKER + "\n"):
        return None
    return text[:start] + VIDEO_MARKER + text[end:]


# Upstream role names (LLaVA JSON: "from"/"value") and chat-style names ("role"/"content") map to ChatML roles.
_ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def normalize_conversation(conversation: Sequence[Mapping[str, Any]]) -> tuple[str | None, list[tuple[str, str]]]:
    """Validates a conversation and maps it to `(system_override, [(role, text), ...])` with roles user/assistant.

    Accepts `{"from": "human"|"gpt", "value": str}` (upstream) and `{"role": "user"|"assistant", "content": ...}`
    turns; `content` may be a list of `{"type": "text", "text": ...}` / `{"type": "image"}` / `{"type": "video"}`
    parts (the transformers chat format), which become text with `<image>` / `<video>` markers. A leading system turn
    overrides the system prompt; a first turn that is then not from the user is dropped (upstream `preprocess_qwen`).
    """
    if isinstance(conversation, (str, bytes)) or not isinstance(conversation, Sequence):
        raise ValueError(f"conversation must be a list of turns, got {type(conversation).__name__}")
    turns: list[tuple[str, str]] = []
    for index, turn in enumerate(conversation):
        if not isinstance(turn, Mapping):
            raise ValueError(f"conversation[{index}] must be a dict, got {type(turn).__name__}")
        raw_role = turn.get("from", turn.get("role"))
        role = _ROLE_ALIASES.get(str(raw_role).lower()) if raw_role is not None else None
        if role is None:
            raise ValueError(
                f"conversation[{index}]: unknown role {raw_role!r} (expected one of {sorted(_ROLE_ALIASES)})"
            )
        content = turn.get("value", turn.get("content"))
        turns.append((role, _content_to_text(content, field=f"conversation[{index}]")))

    system: str | None = None
    if turns and turns[0][0] == "system":
        system = turns.pop(0)[1]
    if turns and turns[0][0] != "user":
        logger.debug("dropping a first %s turn: a conversation starts with the user", turns[0][0])
        turns.pop(0)
    for index, (role, _) in enumerate(turns):
        if role == "system":
            raise ValueError(f"conversation: a system turn is only allowed first (turn {index} after normalisation)")
    return system, turns


def _content_to_text(content: Any, *, field: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, bytes):
        parts = []
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "text":
                parts.append(str(part.get("text", "")))
            elif kind == "image":
                parts.append(IMAGE_MARKER + "\n")
            elif kind == "video":
                parts.append(VIDEO_MARKER + "\n")
            else:
                raise ValueError(f"{field}: content parts must be {{'type': 'text'|'image'|'video'}}, got {part!r}")
        return "".join(parts)
    raise ValueError(f"{field}: content must be a string or a list of parts, got {type(content).__name__}")


def render_segments(
    conversation: Sequence[Mapping[str, Any]],
    *,
    template: ChatTemplate = "qwen_1_5",
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    add_generation_prompt: bool = False,
    eos_token: str = "<|endoftext|>",
) -> list[tuple[str, bool]]:
    """Renders a conversation into `(text, supervised)` segments whose concatenation is the prompt string.

    `qwen_1_5`: ChatML; supervised = each assistant turn's content + its `<|im_end|>` (not the header, not the
    newline after it: spec section 4, "recommended"). With `add_generation_prompt` the text ends with
    `<|im_start|>assistant\\n` (use it for inference, where the conversation ends with a user turn).
    `plain` (stage 1): exactly one user turn (its text is reduced to its visual markers) and one assistant caption;
    text = markers + caption + `eos_token`, supervised = caption + `eos_token` (upstream had no end token).
    """
    if template not in CHAT_TEMPLATES:
        raise ValueError(f"template must be one of {CHAT_TEMPLATES}, got {template!r}")
    system, turns = normalize_conversation(conversation)
    if template == "plain":
        return _render_plain(turns, eos_token=eos_token, add_generation_prompt=add_generation_prompt)

    segments: list[tuple[str, bool]] = [
        (f"<|im_start|>system\n{system if system is not None else system_prompt}<|im_end|>\n", False)
    ]
    for index, (role, text) in enumerate(turns):
        if role == "user":
            segments.append((f"<|im_start|>user\n{text}<|im_end|>\n", False))
            continue
        if IMAGE_MARKER in text or VIDEO_MARKER in text:
            raise ValueError(f"conversation turn {index}: visual markers are only allowed in user turns")
        segments.append(("<|im_start|>assistant\n", False))
        segments.append((f"{text}<|im_end|>", True))
        segments.append(("\n", False))
    if add_generation_prompt:
        segments.append(("<|im_start|>assistant\n", False))
    return _merge(segments)


def _render_plain(
    turns: list[tuple[str, str]], *, eos_token: str, add_generation_prompt: bool
) -> list[tuple[str, bool]]:
    expected = 1 if add_generation_prompt else 2
    if len(turns) != expected or turns[0][0] != "user" or (expected == 2 and turns[1][0] != "assistant"):
        raise ValueError(
            f"plain template: expected {expected} turn(s) (user[, assistant]), got {[r for r, _ in turns]}"
        )
    user_text = turns[0][1]
    markers = [IMAGE_MARKER] * user_text.count(IMAGE_MARKER) + [VIDEO_MARKER] * user_text.count(VIDEO_MARKER)
    if not markers:
        raise ValueError("plain template: the user turn must contain an <image> or <video> marker")
    # Upstream replaces the whole human text by the marker: the caption is conditioned on the image only.
    segments = [("".join(markers), False)]
    if not add_generation_prompt:
        segments.append((turns[1][1] + eos_token, True))
    return segments


def _merge(segments: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Joins neighbours with the same flag (fewer tokenizer calls; tokenisation is unchanged because every joint lies
    next to a special token)."""
    merged: list[tuple[str, bool]] = []
    for text, supervised in segments:
        if merged and merged[-1][1] == supervised:
            merged[-1] = (merged[-1][0] + text, supervised)
        else:
            merged.append((text, supervised))
    return merged


def markers_in_order(text: str) -> list[str]:
    """The `<image>` / `<video>` markers of `text` from left to right."""
    found = []
    index = 0
    while True:
        image_at, video_at = text.find(IMAGE_MARKER, index), text.find(VIDEO_MARKER, index)
        if image_at < 0 and video_at < 0:
            return found
        if video_at < 0 or 0 <= image_at < video_at:
            found.append(IMAGE_MARKER)
            index = image_at + len(IMAGE_MARKER)
        else:
            found.append(VIDEO_MARKER)
            index = video_at + len(VIDEO_MARKER)


def content_visuals(conversation: Sequence[Mapping[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(images, videos) named by the content parts of a chat-format conversation, in text order."""
    images: list[Any] = []
    videos: list[Any] = []
    for index, turn in enumerate(conversation):
        content = turn.get("content") if isinstance(turn, Mapping) else None
        if not isinstance(content, Sequence) or isinstance(content, str):
            continue
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind not in ("image", "video"):
                continue
            source = next((part[key] for key in (kind, "path", "url") if part.get(key) is not None), None)
            if source is None:
                raise ValueError(f"conversation[{index}]: a {kind} part needs '{kind}', 'path' or 'url'")
            if isinstance(source, str) and source.startswith(("http://", "https://")):
                raise ValueError(f"conversation[{index}]: {source} is a URL; download it and pass the local path")
            (images if kind == "image" else videos).append(source)
    return images, videos


def tokenize_with_placeholders(
    tokenizer: Any,
    pieces: Sequence[tuple[str, bool]],
    *,
    image_token: str,
    marker_tokens: Sequence[int],
) -> tuple[list[int], list[int]]:
    """Tokenises `(text, supervised)` pieces (each separately: clean label boundaries) with every `<image>` marker
    as one `image_token`, then writes the k-th placeholder `marker_tokens[k]` times (its visual token count).

    Returns:
        `(input_ids, labels)`: labels hold the token on supervised pieces and -100 elsewhere (placeholders included).

    Raises:
        ValueError: the placeholder count after tokenisation differs from `len(marker_tokens)`.
    """
    image_token_id = tokenizer.convert_tokens_to_ids(image_token)
    texts = [piece.replace(IMAGE_MARKER, image_token) for piece, _ in pieces]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    input_ids: list[int] = []
    labels: list[int] = []
    marker_index = 0
    for ids, (_, supervised) in zip(encoded, pieces, strict=True):
        for token in ids:
            if token == image_token_id:
                count = marker_tokens[marker_index] if marker_index < len(marker_tokens) else 0
                marker_index += 1
                input_ids.extend([token] * count)
                labels.extend([IGNORE_INDEX] * count)
            else:
                input_ids.append(token)
                labels.append(token if supervised else IGNORE_INDEX)
    if marker_index != len(marker_tokens):
        raise ValueError(f"found {marker_index} placeholder tokens after tokenisation, expected {len(marker_tokens)}")
    return input_ids, labels


def render_prompt(conversation: Sequence[Mapping[str, Any]], **kwargs: Any) -> str:
    """The rendered prompt string (markers not yet expanded); keyword arguments as in `render_segments`."""
    return "".join(text for text, _ in render_segments(conversation, **kwargs))


__all__ = [
    "CHAT_TEMPLATES",
    "DEFAULT_SYSTEM_PROMPT",
    "IMAGE_MARKER",
    "VIDEO_MARKER",
    "collapse_frame_lines",
    "count_markers",
    "expand_video_markers",
    "frame_lines",
    "content_visuals",
    "marker_prefix",
    "markers_in_order",
    "normalize_conversation",
    "render_prompt",
    "render_segments",
    "strip_markers",
    "tokenize_with_placeholders",
]
