"""The chat logic both front ends share: one `ChatEngine` per model (generation serialised by a lock) and one
`ChatSession` per user (the loaded file and the turns so far).

Every turn re-renders the whole conversation with the processor (`processor(conversations=..., images=...,
videos=..., add_generation_prompt=True)`) and streams `model.generate` through a `TextIteratorStreamer`, so the
prompt format has one owner: `LlavaOVProcessor`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.model.llava_ov.chat_format import marker_prefix

from .media import DEFAULT_MAX_IMAGE_PIXELS, Media, load_media

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenCount:
    """Tokens of one turn: the whole prompt (visual placeholders included), its visual part, and the answer."""

    prompt_tokens: int
    visual_tokens: int
    generated_tokens: int

    def describe(self) -> str:
        """One line for the user."""
        return (
            f"prompt {self.prompt_tokens} tokens ({self.visual_tokens} visual), answer {self.generated_tokens} tokens"
        )


class _StopWhenSet(StoppingCriteria):
    """Ends generation early when the reader of the stream went away (a closed page, Ctrl-C)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class ChatEngine:
    """A model and its processor. `stream` runs one generation at a time (a lock per model): concurrent callers
    wait their turn instead of sharing the model's KV cache or the CPU."""

    def __init__(
        self,
        model: LlavaOVForConditionalGeneration,
        processor: LlavaOVProcessor,
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model_path: str | Path, *, allow_pickle: bool = False, **kwargs: Any) -> ChatEngine:
        """Loads a checkpoint folder (weights + processor files) on the GPU when there is one; pickle weights
        (`pytorch_model.bin`) only with `allow_pickle`."""
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = LlavaOVForConditionalGeneration.from_pretrained(model_path, allow_pickle=allow_pickle).to(device)
        processor = LlavaOVProcessor.from_pretrained(model_path)
        logger.info("loaded %s on %s", model_path, device)
        return cls(model, processor, **kwargs)

    def stream(
        self, conversation: list[dict[str, str]], *, images: list[Any], videos: list[Any]
    ) -> Iterator[str | TokenCount]:
        """Generates the next assistant turn of `conversation`; yields text pieces as they are decoded, then one
        `TokenCount`. Raises `ValueError` from the processor for malformed input (reserved tokens, markers)."""
        batch = self.processor(conversations=conversation, images=images, videos=videos, add_generation_prompt=True)
        device, dtype = self.model.device, self.model.dtype
        inputs = {
            "input_ids": batch["input_ids"].to(device),
            "attention_mask": batch["attention_mask"].to(device),
            "pixel_values": [pixels.to(device, dtype) for pixels in batch["pixel_values"]],
            "patch_positions": [None if p is None else p.to(device) for p in batch["patch_positions"]],
        }
        prompt_tokens = int(inputs["input_ids"].shape[1])
        visual_tokens = int((batch["input_ids"] == self.processor.image_token_id).sum())
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = threading.Event()
        sampling: dict[str, Any] = {"do_sample": False}
        if self.temperature > 0:
            sampling = {"do_sample": True, "temperature": self.temperature}
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with torch.inference_mode():
                    result["output"] = self.model.generate(
                        **inputs,
                        max_new_tokens=self.max_new_tokens,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]),
                        **sampling,
                    )
            except BaseException as error:  # re-raised in the reading thread below
                result["error"] = error
                streamer.end()

        with self._lock:
            worker = threading.Thread(target=run, name="llava-serve-generate", daemon=True)
            worker.start()
            try:
                yield from streamer
            finally:
                stop.set()  # no-op after a normal end; cuts generation short when the reader stopped early
                worker.join()
        if "error" in result:
            raise result["error"]
        generated = int(result["output"].shape[1]) - prompt_tokens
        yield TokenCount(prompt_tokens=prompt_tokens, visual_tokens=visual_tokens, generated_tokens=generated)


class ChatSession:
    """One user's conversation: at most one file (its marker opens the first user turn) and the turns so far.

    The session owns a temporary folder (created at the first load, under `figure_root` or the system's temporary
    folder) for the pictures of what the model sees; `close()` (or leaving a `with` block) removes it.
    """

    def __init__(
        self,
        engine: ChatEngine,
        *,
        figure_root: str | Path | None = None,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self.engine = engine
        self.figure_root = figure_root
        self.max_image_pixels = max_image_pixels
        self.figure_dir: Path | None = None
        self.media: Media | None = None
        self.turns: list[dict[str, str]] = []
        self.last_count: TokenCount | None = None

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Forgets the file and the turns and removes the session's temporary folder."""
        self.unload()
        if self.figure_dir is not None:
            shutil.rmtree(self.figure_dir, ignore_errors=True)
            self.figure_dir = None

    def _figures(self) -> Path:
        if self.figure_dir is None:
            if self.figure_root is not None:
                Path(self.figure_root).mkdir(parents=True, exist_ok=True)
            self.figure_dir = Path(tempfile.mkdtemp(prefix="llava_serve_", dir=self.figure_root))
        return self.figure_dir

    def load(self, path: str | Path) -> Media:
        """Loads (decodes, selects, preprocesses) a video or an image and starts a new conversation about it (the
        old turns referred to the old file). Raises `MediaError` and keeps the current file and turns then."""
        media = load_media(
            path, self.engine.processor, figure_dir=self._figures(), max_image_pixels=self.max_image_pixels
        )
        previous = self.media
        self.media = media
        self.reset()
        if previous is not None and previous.figure is not None and previous.figure != media.figure:
            if previous.figure.parent == self.figure_dir:  # ours (an image's figure is the user's own file)
                previous.figure.unlink(missing_ok=True)
        return media

    def unload(self) -> None:
        """Drops the file and the turns: the next question is text only."""
        self.media = None
        self.reset()

    def reset(self) -> None:
        """Forgets the turns; the loaded file stays."""
        self.turns = []
        self.last_count = None

    def ask(self, question: str) -> Iterator[str]:
        """Streams the answer to `question`; the turn pair is kept (with what was generated) even when the caller
        stops reading early. `last_count` holds the token count once the stream ends."""
        question = question.strip()
        if not question:
            raise ValueError("empty question")
        text = question
        if not self.turns and self.media is not None:
            kind = self.media.kind
            text = marker_prefix(num_images=int(kind == "image"), num_videos=int(kind == "video")) + question
        conversation = [*self.turns, {"from": "human", "value": text}]
        images = [self.media.item] if self.media is not None and self.media.kind == "image" else []
        videos = [self.media.item] if self.media is not None and self.media.kind == "video" else []
        pieces: list[str] = []
        started = False
        try:
            for piece in self.engine.stream(conversation, images=images, videos=videos):
                started = True
                if isinstance(piece, TokenCount):
                    self.last_count = piece
                else:
                    pieces.append(piece)
                    yield piece
        finally:
            if started:
                self.turns = [*conversation, {"from": "gpt", "value": "".join(pieces)}]
