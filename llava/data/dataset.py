"""`LlavaOVDataset`: manifest records -> processor outputs, with bad samples raising (file:line) or skipped and
counted, and the per-sample token cost used by the length-grouped sampler."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from llava.model.llava_ov.processing_llava_ov import LlavaOVProcessor
from llava.model.llava_ov.video_inputs import VideoFrames, positions_grid

from .manifests import Manifest, SubsetManifest
from .media import check_positions, load_positions_file
from .samples import SampleInputs, sample_inputs, text_for_cost, visual_token_cost
from .scan import SAMPLE_ERRORS, ScanResult, describe_bad, scan_manifest

logger = logging.getLogger(__name__)

# Failures a bad sample can cause: malformed data (ValueError), missing/unreadable media (OSError, incl.
# FileNotFoundError and PIL's UnidentifiedImageError), undecodable video (PyAV's FFmpegError; cv_reader's
# VideoReadError is a ValueError), decompression bombs. Anything else is a bug and propagates.
_SAMPLE_ERRORS = SAMPLE_ERRORS


class LlavaOVDataset(Dataset):
    """Map-style dataset over a (lazy) manifest.

    Args:
        manifest: from `llava.data.load_manifest`.
        processor: the `LlavaOVProcessor` (prompt format, placeholders, pixels).
        max_length: samples longer than this (in tokens, visual included) are errors; they are never truncated,
            because truncation would cut placeholders or the supervised answer.
        skip_bad_samples: on a bad sample, log it with its file:line and reason, count it in `num_skipped`, and
            return the next good sample instead (at most `max_consecutive_skips` in a row, then raise).

    `__getitem__` returns the processor's per-sample dict (`input_ids` int64 [L], `attention_mask`, `labels`,
    `pixel_values` list, `patch_positions` list, `num_visual_tokens`) plus `id` and `source` ("file:line").
    """

    def __init__(
        self,
        manifest: Manifest,
        processor: LlavaOVProcessor,
        *,
        max_length: int | None = None,
        skip_bad_samples: bool = False,
        max_consecutive_skips: int = 32,
    ) -> None:
        self.manifest = manifest
        self.processor = processor
        self.max_length = max_length
        self.skip_bad_samples = skip_bad_samples
        self.max_consecutive_skips = max_consecutive_skips
        self.num_skipped = 0  # per process: each DataLoader worker counts (and logs) its own
        self.num_excluded = 0  # bad samples left out by `prepare` before training
        self.scan: ScanResult | None = None
        self._costs: np.ndarray | None = None
        self._max_token_chars: int | None = None

    def __len__(self) -> int:
        return len(self.manifest)

    def inputs(self, index: int) -> SampleInputs:
        """Processor inputs of sample `index` (no media decoded)."""
        return sample_inputs(self.manifest[index])

    def load(self, index: int) -> dict[str, Any]:
        """Sample `index` through the processor; any failure is a `ValueError` naming the sample's file:line."""
        source = self.manifest.source(index)
        try:
            inputs = self.inputs(index)
            inputs.videos = [self._checked_video(video, source) for video in inputs.videos]
            self._check_length_bound(inputs, source)
            out = self.processor.process_conversation(inputs.conversation, images=inputs.images, videos=inputs.videos)
        except _SAMPLE_ERRORS as error:
            message = str(error)
            raise ValueError(message if message.startswith(source) else f"{source}: {message}") from error
        if self.max_length is not None and len(out["input_ids"]) > self.max_length:
            raise ValueError(f"{source}: {len(out['input_ids'])} tokens exceed max_length={self.max_length}")
        if not bool((out["labels"] != -100).any()):
            raise ValueError(f"{source}: no supervised token (no assistant answer)")
        out["id"] = inputs.sample_id
        out["source"] = source
        return out

    def _checked_video(self, video: VideoFrames | str, source: str) -> VideoFrames | str:
        """Codec positions read without pickle and validated against their grid here, so a bad file is a bad sample
        named by file:line (skippable) and never reaches the model."""
        if not isinstance(video, VideoFrames) or not isinstance(video.positions_thw, (str, Path)):
            return video
        path = video.positions_thw
        positions = load_positions_file(path)
        grid = positions_grid(len(positions), num_frames=len(video.frames))
        check_positions(
            positions, grid=grid, temporal_size=self.processor.video_temporal_size, where=f"positions_thw {path}"
        )
        return VideoFrames(frames=video.frames, positions_thw=positions)

    def _check_length_bound(self, inputs: SampleInputs, source: str) -> None:
        """Rejects a sample that cannot fit `max_length` before tokenising it: a token covers at most the longest
        vocabulary entry's characters, so chars / that + visual tokens is a lower bound (a 10 MB line is refused in
        milliseconds instead of being tokenised for half a minute)."""
        if self.max_length is None:
            return
        if self._max_token_chars is None:
            self._max_token_chars = max(1, max(len(token) for token in self.processor.tokenizer.get_vocab()))
        text = text_for_cost(inputs, self.processor)
        bound = math.ceil(len(text) / self._max_token_chars) + visual_token_cost(inputs, self.processor)
        if bound > self.max_length:
            raise ValueError(
                f"{source}: at least {bound} tokens ({len(text)} characters of text) exceed "
                f"max_length={self.max_length}"
            )

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not self.skip_bad_samples:
            return self.load(index)
        for attempt in range(self.max_consecutive_skips + 1):
            current = (index + attempt) % len(self)
            try:
                return self.load(current)
            except ValueError as error:
                self.num_skipped += 1
                logger.warning("skipping bad sample (%d skipped in this process): %s", self.num_skipped, error)
        raise ValueError(f"{self.max_consecutive_skips + 1} consecutive bad samples from index {index}: stopping")

    def token_cost(self, index: int) -> int:
        """Exact tokens of sample `index` as the LLM sees them: text tokens + visual tokens (media headers only)."""
        inputs = self.inputs(index)
        text_tokens = len(
            self.processor.tokenizer(text_for_cost(inputs, self.processor), add_special_tokens=False)["input_ids"]
        )
        return text_tokens + visual_token_cost(inputs, self.processor)

    def prepare(
        self,
        *,
        num_workers: int | None = None,
        cache_dir: str | Path | None = None,
        use_cache: bool = True,
        progress: bool = True,
    ) -> ScanResult:
        """The start-up pass (`llava.data.scan`): every sample validated and costed once, in parallel, cached on disk.

        Bad samples: with `skip_bad_samples` they are left out of the dataset here (counted in `num_excluded`,
        logged before training); without it the first ones raise a `ValueError` naming their file:line, so a bad
        manifest stops the run before step 0. Idempotent: a second call returns the first result.
        """
        if self.scan is not None:
            return self.scan
        result = scan_manifest(
            self.manifest, self.processor, max_length=self.max_length, num_workers=num_workers,
            cache_dir=cache_dir, use_cache=use_cache, progress=progress,
        )  # fmt: skip
        costs = result.costs()
        if len(result.bad):
            if not self.skip_bad_samples:
                raise ValueError(f"{describe_bad(result)} (set skip_bad_samples: true to leave them out)")
            keep = np.ones(len(self.manifest), dtype=bool)
            keep[result.bad] = False
            self.manifest = SubsetManifest(self.manifest, np.flatnonzero(keep))
            costs = costs[keep]
            self.num_excluded = len(result.bad)
            logger.warning("left out %s", describe_bad(result))
        self.scan, self._costs = result, costs
        return result

    def estimated_costs(self) -> np.ndarray:
        """Estimated token cost per sample, int64 [len(self)] (text estimate + exact visual tokens; see
        `llava.data.scan`), from `prepare()` (run on first use)."""
        if self._costs is None:
            self.prepare()
        assert self._costs is not None
        return self._costs

    def token_costs(self) -> np.ndarray:
        """Alias of `estimated_costs` (the samplers' input)."""
        return self.estimated_costs()


__all__ = ["LlavaOVDataset"]
