"""3-D rotary position embedding of the OneVision-Encoder (spec: shared/specs/ov_encoder.md section 4).

Positions are (t, h, w) grid coordinates. The head dimension's frequency slots are split t:h:w = 4:6:6 with a dense
per-axis exponent (``theta ** (-k / size)``), the angles are duplicated by *concatenation* and applied with an
*interleaved pair* rotation. The two members of a pair therefore rotate by different angles: this is the upstream
"pairing quirk" that the published weights were trained with, and it is reproduced exactly here.

Frequencies are computed on the fly in float32 (never stored as buffers): upstream's non-persistent buffers are left
uninitialised by transformers 5 and are quantised by ``model.to(torch.bfloat16)``.
"""

from __future__ import annotations

import torch
from torch import nn


def axis_sizes(head_dim: int) -> tuple[int, int, int]:
    """Frequency slots per axis (t, h, w) for one half of ``head_dim``: 4:6:6 of ``head_dim // 2``."""
    unit = head_dim // 2 // 16
    return 4 * unit, 6 * unit, 6 * unit


class OneVisionEncoderRotaryEmbedding(nn.Module):
    """Maps (t, h, w) positions to the cos/sin tables of the 3-D RoPE.

    Holds no tensors: the inverse frequencies are recomputed in float32 for each call (a few hundred flops), which
    makes the module immune to dtype casts and meta-device initialisation.
    """

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.theta = float(theta)
        self.t_size, self.h_size, self.w_size = axis_sizes(head_dim)

    def inverse_frequencies(
        self, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-axis inverse frequencies ``theta ** (-k / size)``, float32, shapes [t_size], [h_size], [w_size]."""

        def axis(size: int) -> torch.Tensor:
            exponent = torch.arange(size, dtype=torch.float32, device=device) / size
            return 1.0 / (self.theta**exponent)

        return axis(self.t_size), axis(self.h_size), axis(self.w_size)

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """Rotation angles for ``positions`` [..., 3] (t, h, w): float32 [..., head_dim].

        ``a = [t * inv_t, h * inv_h, w * inv_w]`` fills half the head dimension; the full table is ``cat(a, a)``.
        """
        positions = positions.to(torch.float32)
        inv_t, inv_h, inv_w = self.inverse_frequencies(positions.device)
        half = torch.cat(
            [positions[..., 0:1] * inv_t, positions[..., 1:2] * inv_h, positions[..., 2:3] * inv_w], dim=-1
        )
        return torch.cat([half, half], dim=-1)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of the angles, float32 [..., head_dim] each."""
        angles = self.angles(positions)
        return angles.cos(), angles.sin()


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """Interleaved pair rotation by 90 degrees: ``[x0, x1, x2, x3, ...] -> [-x1, x0, -x3, x2, ...]``."""
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((-odd, even), dim=-1).flatten(-2)


def apply_rotary(
    query: torch.Tensor,
    key: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    *,
    compute_dtype: str = "float32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotates ``query``/``key`` [B, heads, L, head_dim] by cos/sin [B, 1, L, head_dim] (float32).

    ``compute_dtype="float32"`` upcasts q and k, rotates in fp32 and casts back (hub ``-large``);
    ``"activation"`` casts cos/sin to the activation dtype and rotates there (``-large-lang``). Identical in fp32.
    """
    if compute_dtype == "float32":
        dtype = query.dtype
        q, k = query.float(), key.float()
        q = q * cos + rotate_pairs(q) * sin
        k = k * cos + rotate_pairs(k) * sin
        return q.to(dtype), k.to(dtype)
    if compute_dtype == "activation":
        cos, sin = cos.to(query.dtype), sin.to(query.dtype)
        return query * cos + rotate_pairs(query) * sin, key * cos + rotate_pairs(key) * sin
    raise ValueError(f"rope_compute_dtype must be 'float32' or 'activation', got {compute_dtype!r}")
