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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
IMAGE_MARKER = "<image>"
VIDEO_MARKER = "<video>"
ChatTemplate = Literal["qwen_1_5", "plain"]
CHAT_TEMPLATES: tuple[str, ...] = ("qwen_1_5", "plain")

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


def render_prompt(conversation: Sequence[Mapping[str, Any]], **kwargs: Any) -> str:
    """The rendered prompt string (markers not yet expanded); keyword arguments as in `render_segments`."""
    return "".join(text for text, _ in render_segments(conversation, **kwargs))


__all__ = [
    "CHAT_TEMPLATES",
    "DEFAULT_SYSTEM_PROMPT",
    "IMAGE_MARKER",
    "VIDEO_MARKER",
    "normalize_conversation",
    "render_prompt",
    "render_segments",
]
