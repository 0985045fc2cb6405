"""Batching: which visuals belong to which prompt of a batch call, and padding per-sample model inputs into a batch
(the one padding rule of the processor, `LlavaOVProcessor.pad`, and of the training collator, `llava.data.collator`,
so both produce the same tensors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .chat_format import IGNORE_INDEX


def pad_samples(
    samples: Sequence[Mapping[str, Any]],
    *,
    pad_token_id: int,
    padding_side: str = "right",
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pads `input_ids` (with `pad_token_id`), `labels` (with -100, when the samples have them) and builds the
    `attention_mask` (1 on tokens, 0 on padding).

    Args:
        samples: dicts with `input_ids` int64 [L_i] and optionally `labels` int64 [L_i].
        padding_side: "right" (training) or "left" (batched generation).
        pad_to_multiple_of: round the padded length up (e.g. 8 for tensor cores).

    Returns:
        `input_ids` int64 [B, L], `attention_mask` int64 [B, L], and `labels` int64 [B, L] when present.
    """
    if not samples:
        raise ValueError("pad_samples: empty batch")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    length = max(len(sample["input_ids"]) for sample in samples)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    with_labels = "labels" in samples[0]
    input_ids = torch.full((len(samples), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(samples), length), dtype=torch.long)
    labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long)
    for row, sample in enumerate(samples):
        size = len(sample["input_ids"])
        span = slice(length - size, length) if padding_side == "left" else slice(0, size)
        input_ids[row, span] = torch.as_tensor(sample["input_ids"])
        attention_mask[row, span] = 1
        if with_labels:
            labels[row, span] = torch.as_tensor(sample["labels"])
    out = {"input_ids": input_ids, "attention_mask": attention_mask}
    if with_labels:
        out["labels"] = labels
    return out


def as_list(value: Any, *, single: tuple[type, ...]) -> list[Any]:
    """None -> [], one input (a path, an image, a video) -> [it], a sequence -> list."""
    if value is None:
        return []
    if isinstance(value, single):
        return [value]
    return list(value)


def visuals_per_prompt(value: Any, counts: list[int], *, single: tuple[type, ...], kind: str) -> list[list[Any]]:
    """Visuals of the text call -> one list per prompt: a list of per-prompt lists (None for none) is taken as
    given, a single item or a flat list is dealt to the prompts' markers in order (as transformers processors do)."""
    if value is not None and not isinstance(value, single):
        items = list(value)
        nested = len(items) == len(counts) and all(item is None or not isinstance(item, single) for item in items)
        if nested and items:
            return [as_list(item, single=single) for item in items]
    flat = as_list(value, single=single)
    if len(flat) != sum(counts):
        raise ValueError(f"the prompts have {sum(counts)} markers for {kind} but {len(flat)} {kind} were given")
    out, start = [], 0
    for count in counts:
        out.append(flat[start : start + count])
        start += count
    return out


__all__ = ["IGNORE_INDEX", "as_list", "pad_samples", "visuals_per_prompt"]
