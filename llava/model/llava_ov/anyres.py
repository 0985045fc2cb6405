"""Upstream "anyres" single-canvas image geometry (spec: shared/specs/llava_model_and_training.md section 3.1).

An image is placed on ONE canvas chosen from a list of pinpoints (no tiling, no base image): the canvas that keeps the
most of the original resolution wins, ties go to the canvas that wastes the least area, and on a full tie the first
candidate wins (which is why a small landscape image lands on the portrait canvas 574x1120, spec section 7.7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import PIL.Image

# (width, height) in pixels; sides are multiples of 14, so 41 / 80 / 121 patches per side.
DEFAULT_IMAGE_GRID_PINPOINTS: tuple[tuple[int, int], ...] = (
    (574, 1120),
    (1120, 574),
    (1120, 1120),
    (1694, 574),
    (574, 1694),
)


def select_best_resolution(
    original_size: tuple[int, int], possible_resolutions: Sequence[Sequence[int]]
) -> tuple[int, int]:
    """The pinpoint an image of `original_size` = (width, height) is placed on, as upstream `mm_utils` chooses it.

    Effective resolution = min(area of the image scaled to fit the canvas, original area) with the scaled sides
    truncated to ints; maximise it, then minimise the wasted canvas area; the first candidate wins a full tie.

    Returns:
        `(width, height)` of the chosen canvas in pixels.
    """
    original_width, original_height = original_size
    if original_width <= 0 or original_height <= 0:
        raise ValueError(
            f"select_best_resolution: image size must be positive, got {original_width}x{original_height}"
        )
    if not possible_resolutions:
        raise ValueError("select_best_resolution: possible_resolutions is empty")
    best_fit: tuple[int, int] | None = None
    max_effective = -1
    min_wasted = math.inf
    for width, height in possible_resolutions:
        scale = min(width / original_width, height / original_height)
        scaled_width, scaled_height = int(original_width * scale), int(original_height * scale)
        effective = min(scaled_width * scaled_height, original_width * original_height)
        wasted = width * height - effective
        if effective > max_effective or (effective == max_effective and wasted < min_wasted):
            max_effective, min_wasted, best_fit = effective, wasted, (int(width), int(height))
    assert best_fit is not None
    return best_fit


def resize_and_pad_image(image: PIL.Image.Image, target_resolution: tuple[int, int]) -> PIL.Image.Image:
    """Aspect-preserving resize (up or down, PIL bicubic) to fit `target_resolution` = (width, height), pasted centred
    on a black RGB canvas of exactly that size (upstream `resize_and_pad_image`).

    The side that limits the scale becomes exactly the canvas side; the other is `ceil(side * scale)` capped at the
    canvas, as upstream computes it.
    """
    original_width, original_height = image.size
    target_width, target_height = target_resolution
    scale_w, scale_h = target_width / original_width, target_height / original_height
    if scale_w < scale_h:
        new_width, new_height = target_width, min(math.ceil(original_height * scale_w), target_height)
    else:
        new_width, new_height = min(math.ceil(original_width * scale_h), target_width), target_height
    resized = image.convert("RGB").resize((new_width, new_height), resample=PIL.Image.Resampling.BICUBIC)
    canvas = PIL.Image.new("RGB", (target_width, target_height), (0, 0, 0))
    canvas.paste(resized, ((target_width - new_width) // 2, (target_height - new_height) // 2))
    return canvas


__all__ = ["DEFAULT_IMAGE_GRID_PINPOINTS", "resize_and_pad_image", "select_best_resolution"]
