"""Upstream "anyres" single-canvas image geometry (spec: shared/specs/llava_model_and_training.md section 3.1).

An image is placed on ONE canvas chosen from a list of pinpoints (no tiling, no base image). The choice is
transformers' `select_best_resolution` (upstream's rule; called by `visual_processing.anyres_canvas`): the canvas that
keeps the most of the original resolution wins, ties go to the canvas that wastes the least area, and on a full tie
the first candidate wins (which is why a small landscape image lands on the portrait canvas 574x1120, spec 7.7).

`resize_and_pad_image` stays ours: upstream resizes the PIL image with PIL bicubic and pastes it on a black canvas,
while transformers' LLaVA-NeXT processors resize numpy arrays with their own resampling and pad per patch grid, which
gives other pixels (tests/model/test_processing_llava_ov.py checks the upstream bars and sizes).
"""

from __future__ import annotations

import math

import PIL.Image

# (width, height) in pixels; sides are multiples of 14, so 41 / 80 / 121 patches per side.
DEFAULT_IMAGE_GRID_PINPOINTS: tuple[tuple[int, int], ...] = (
    (574, 1120),
    (1120, 574),
    (1120, 1120),
    (1694, 574),
    (574, 1694),
)


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


__all__ = ["DEFAULT_IMAGE_GRID_PINPOINTS", "resize_and_pad_image"]
