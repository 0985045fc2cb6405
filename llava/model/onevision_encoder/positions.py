"""Where each token's (t, h, w) RoPE position comes from (spec: shared/specs/ov_encoder.md section 5).

Exactly one source per sample:
1. dense grid: tokens in patch-embedding order (frame-major, then row-major) take the first N rows of the
   (t, h, w) grid table; 4-D images have a 1-frame grid, 5-D videos the ``rope_temporal_size``-frame grid,
   so a dense clip of T <= 64 frames gets t = 0..T-1.
2. ``visible_indices`` [B, K]: indices into that grid table (``t * Hp * Wp + h * Wp + w``). When K != N the
   tokens are gathered by the same indices; when K == N (packed mosaics) tokens keep their order and only their
   positions come from the indices.
3. ``patch_positions`` [B, N, 3]: explicit (t, h, w) per token (the LLaVA interface).
"""

from __future__ import annotations

import torch


def grid_positions(index: torch.Tensor, *, grid_h: int, grid_w: int) -> torch.Tensor:
    """(t, h, w) of flat grid indices: int64 [...] -> float32 [..., 3]."""
    per_frame = grid_h * grid_w
    t = torch.div(index, per_frame, rounding_mode="floor")
    rest = index - t * per_frame
    h = torch.div(rest, grid_w, rounding_mode="floor")
    w = rest - h * grid_w
    return torch.stack([t, h, w], dim=-1).to(torch.float32)


def dense_positions(
    *, batch: int, frames: int, grid_h: int, grid_w: int, device: torch.device | None = None
) -> torch.Tensor:
    """Positions of every token of ``frames`` frames in embedding order: float32 [batch, frames * Hp * Wp, 3]."""
    index = torch.arange(frames * grid_h * grid_w, device=device)
    return grid_positions(index, grid_h=grid_h, grid_w=grid_w).unsqueeze(0).expand(batch, -1, -1)


def check_visible_indices(
    visible_indices: torch.Tensor, *, batch: int, num_tokens: int, grid_size: int
) -> torch.Tensor:
    """Validates ``visible_indices`` [B, K] and returns it as int64.

    With K != N the indices select tokens, so they must be < N; with K == N they only name grid positions, so they
    must be < ``grid_size`` (the number of cells of the RoPE grid).
    """
    if visible_indices.dim() != 2 or visible_indices.shape[0] != batch:
        raise ValueError(f"visible_indices must have shape [batch={batch}, K], got {list(visible_indices.shape)}")
    if visible_indices.dtype.is_floating_point or visible_indices.dtype == torch.bool:
        raise ValueError(f"visible_indices must be an integer tensor, got {visible_indices.dtype}")
    visible_indices = visible_indices.long()
    num_visible = visible_indices.shape[1]
    limit = grid_size if num_visible == num_tokens else num_tokens
    if num_visible and (int(visible_indices.min()) < 0 or int(visible_indices.max()) >= limit):
        what = "cells of the RoPE grid" if num_visible == num_tokens else "tokens in pixel_values (gather case K != N)"
        raise ValueError(
            f"visible_indices out of range: values must lie in [0, {limit}) ({limit} {what}), "
            f"got min {int(visible_indices.min())} max {int(visible_indices.max())}"
        )
    return visible_indices


def check_patch_positions(
    patch_positions: torch.Tensor, *, batch: int, num_tokens: int, temporal_size: int | None
) -> torch.Tensor:
    """Validates ``patch_positions`` [B, N, 3] (t, h, w) and returns it as float32.

    Coordinates must be finite and non-negative and t must lie on the temporal grid. h and w may exceed the pixel
    grid of the input (mosaic tokens keep the coordinates of the frame they were cut from).
    """
    if patch_positions.dim() != 3 or patch_positions.shape[-1] != 3:
        raise ValueError(f"patch_positions must have shape [batch, tokens, 3], got {list(patch_positions.shape)}")
    if patch_positions.shape[0] != batch or patch_positions.shape[1] != num_tokens:
        raise ValueError(
            f"patch_positions has {patch_positions.shape[1]} rows for batch {patch_positions.shape[0]}, but "
            f"pixel_values gives batch {batch} with {num_tokens} patches: one (t, h, w) row per patch is needed"
        )
    positions = patch_positions.to(torch.float32)
    if positions.numel():
        if not torch.isfinite(positions).all():
            raise ValueError("patch_positions contains non-finite values")
        if float(positions.min()) < 0:
            raise ValueError(f"patch_positions must be non-negative, got a minimum of {float(positions.min())}")
        if temporal_size is not None and float(positions[..., 0].max()) >= temporal_size:
            raise ValueError(
                f"patch_positions has t = {float(positions[..., 0].max()):g}, outside the temporal grid "
                f"[0, {temporal_size}) (rope_temporal_size); map frames onto the grid first, "
                "e.g. t = linspace(0, 63, T).long()"
            )
    return positions
