"""`LlavaOVDataset`: manifest records -> processor outputs, with bad samples raising (file:line) or skipped and
counted, and the per-sample token cost used by the length-grouped sampler."""

from __future__ import annotations

import logging
from typing import Any

import av
import numpy as np
from torch.utils.data import Dataset

from llava.model.llava_ov.processing_llava_ov import LlavaOVProcessor

from .manifests import Manifest
from .samples import SampleInputs, sample_inputs, text_for_cost, visual_token_cost

logger = logging.getLogger(__name__)

# Failures a bad sample can cause: malformed data (ValueError), missing/unreadable media (OSError, incl.
# FileNotFoundError and PIL's UnidentifiedImageError), undecodable video (PyAV's FFmpegError; cv_reader's
# VideoReadError is a ValueError). Anything else is a bug and propagates.
_SAMPLE_ERRORS = (ValueError, OSError, KeyError, IndexError, av.error.FFmpegError)


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
        self._costs: np.ndarray | None = None

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
        """Tokens of sample `index` as the LLM sees them: text tokens + visual tokens (media headers only)."""
        inputs = self.inputs(index)
        text_tokens = len(
            self.processor.tokenizer(text_for_cost(inputs, self.processor), add_special_tokens=False)["input_ids"]
        )
        return text_tokens + visual_token_cost(inputs, self.processor)

    def token_costs(self, *, batch_size: int = 1024) -> np.ndarray:
        """`token_cost` of every sample, int64 [len(self)], computed once (text tokenised in batches) and cached.
        A sample that cannot be read costs 0 here; it fails (or is skipped) when loaded."""
        if self._costs is not None:
            return self._costs
        costs = np.zeros(len(self), dtype=np.int64)
        for start in range(0, len(self), batch_size):
            texts, positions = [], []
            for index in range(start, min(start + batch_size, len(self))):
                try:
                    inputs = self.inputs(index)
                    costs[index] = visual_token_cost(inputs, self.processor)
                    texts.append(text_for_cost(inputs, self.processor))
                    positions.append(index)
                except _SAMPLE_ERRORS as error:
                    logger.warning("token cost of %s unknown: %s", self.manifest.source(index), error)
            if texts:
                encoded = self.processor.tokenizer(texts, add_special_tokens=False)["input_ids"]
                for index, ids in zip(positions, encoded, strict=True):
                    costs[index] += len(ids)
        self._costs = costs
        return costs


__all__ = ["LlavaOVDataset"]
