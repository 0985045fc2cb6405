"""Batching of processor outputs: right padding, or sequence packing (spec: llava_model_and_training.md 9.3, 9.6).

Packing concatenates whole samples into rows of at most `max_tokens_per_row` tokens (a longer sample gets a row of
its own). Each sample's `position_ids` restart at 0, there is no attention mask, and transformers 5 derives the
per-sample (block-diagonal causal) attention from the position resets (sdpa/eager mask, or varlen flash attention).
The first label of every sample is -100, so no token is trained to predict across a sample boundary, and the row's
tail padding is a separate pseudo-sample (positions from 0, labels -100). Visual items stay flat in sample order,
which is placeholder order in the packed rows, so the model's masked_scatter fills them correctly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from llava.model.llava_ov.batching import IGNORE_INDEX, pad_samples

logger = logging.getLogger(__name__)


@dataclass
class LlavaOVCollator:
    """Collates `LlavaOVDataset` items.

    Args:
        pad_token_id: id used for padding (`tokenizer.pad_token_id`).
        packing: pack samples into rows instead of padding each sample to the longest.
        max_tokens_per_row: packing budget per row; None packs the whole batch into one row.
        padding_side: "right" (training) or "left"; packing always pads rows on the right.
        pad_to_multiple_of: round the padded length up (e.g. 8 for tensor cores).

    Returns (padding): `input_ids` int64 [B, L], `attention_mask` int64 [B, L], `labels` int64 [B, L],
    `pixel_values` list, `patch_positions` list (empty lists for a text-only batch).
    Returns (packing): `input_ids` [R, L], `labels` [R, L], `position_ids` int64 [R, L] (no attention mask),
    `pixel_values`, `patch_positions`. Sample boundaries are where `position_ids` restart at 0.
    """

    pad_token_id: int
    packing: bool = False
    max_tokens_per_row: int | None = None
    padding_side: Literal["right", "left"] = "right"
    pad_to_multiple_of: int | None = None

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not samples:
            raise ValueError("LlavaOVCollator: empty batch")
        batch = self._pack(samples) if self.packing else self._pad(samples)
        batch["pixel_values"] = [pixels for sample in samples for pixels in sample.get("pixel_values", [])]
        batch["patch_positions"] = [positions for sample in samples for positions in sample.get("patch_positions", [])]
        return batch

    def _padded_length(self, length: int) -> int:
        multiple = self.pad_to_multiple_of
        return length if not multiple else -(-length // multiple) * multiple

    def _pad(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return pad_samples(
            samples,
            pad_token_id=self.pad_token_id,
            padding_side=self.padding_side,
            pad_to_multiple_of=self.pad_to_multiple_of,
        )

    def _pack(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        budget = self.max_tokens_per_row
        rows: list[list[int]] = []  # sample indices per row, in order (keeps visual items in placeholder order)
        used = 0
        for index, sample in enumerate(samples):
            size = len(sample["input_ids"])
            if rows and (budget is None or used + size <= budget):
                rows[-1].append(index)
                used += size
            else:
                if budget is not None and size > budget:
                    logger.debug("sample of %d tokens exceeds the packing budget %d: own row", size, budget)
                rows.append([index])
                used = size
        length = self._padded_length(max(sum(len(samples[i]["input_ids"]) for i in row) for row in rows))
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((len(rows), length), dtype=torch.long)
        for row, members in enumerate(rows):
            start = 0
            for index in members:
                ids, sample_labels = samples[index]["input_ids"], samples[index]["labels"]
                size = len(ids)
                input_ids[row, start : start + size] = ids
                labels[row, start : start + size] = sample_labels
                labels[row, start] = IGNORE_INDEX  # nothing predicts a sample's first token from the previous sample
                position_ids[row, start : start + size] = torch.arange(size)
                start += size
            position_ids[row, start:] = torch.arange(length - start)  # tail padding: its own pseudo-sample
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": position_ids,
        }


__all__ = ["LlavaOVCollator"]
