"""An independent, functional OneVision-Encoder written straight from shared/specs/ov_encoder.md.

It shares no code with ``llava.model`` (different patch embedding (unfold + matmul), an element-wise RoPE written
from the spec's per-index formula, hand-written attention pooling) and runs in float64. It is pinned to upstream
by the ``ov_encoder_tiny`` fixture in the tests, then used as the reference for configurations that fixture does
not cover (no head, other widths and depths, other patch sizes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _positions(config: dict, frames: int, grid_h: int, grid_w: int, visible_indices, patch_positions, tokens):
    """Returns (token selection or None, positions [B, L, 3] float64)."""
    batch = tokens.shape[0]
    if patch_positions is not None:
        return None, patch_positions.to(torch.float64)
    grid_frames = frames if frames == 1 else (config["rope_temporal_size"] or frames)
    index = torch.arange(grid_frames * grid_h * grid_w)
    grid = torch.stack([index // (grid_h * grid_w), (index % (grid_h * grid_w)) // grid_w, index % grid_w], -1)
    if visible_indices is None:
        return None, grid[: tokens.shape[1]].to(torch.float64).expand(batch, -1, -1)
    select = None if visible_indices.shape[1] == tokens.shape[1] else visible_indices
    return select, grid[visible_indices].to(torch.float64)


def _rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """x [B, heads, L, Dh], element-wise per spec section 4:

    out[2i] = x[2i] cos(A[2i]) - x[2i+1] sin(A[2i]);  out[2i+1] = x[2i+1] cos(A[2i+1]) + x[2i] sin(A[2i+1])
    """
    head_dim = x.shape[-1]
    unit = head_dim // 2 // 16
    sizes = (4 * unit, 6 * unit, 6 * unit)
    parts = []
    for axis, size in enumerate(sizes):
        inv = torch.tensor([theta ** (-k / size) for k in range(size)], dtype=torch.float64)
        parts.append(positions[..., axis : axis + 1] * inv)
    half = torch.cat(parts, -1)
    angles = torch.cat([half, half], -1)[:, None]  # (B, 1, L, Dh)
    out = torch.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * angles[..., 0::2].cos() - x[..., 1::2] * angles[..., 0::2].sin()
    out[..., 1::2] = x[..., 1::2] * angles[..., 1::2].cos() + x[..., 0::2] * angles[..., 1::2].sin()
    return out


def reference_forward(
    state: dict[str, torch.Tensor],
    config: dict,
    pixel_values: torch.Tensor,
    *,
    visible_indices: torch.Tensor | None = None,
    patch_positions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
    """(last_hidden_state, pooler_output or None, hidden_states) in float64."""
    sd = {k: v.to(torch.float64) for k, v in state.items()}
    hidden, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    patch = config["patch_size"]
    x = pixel_values.to(torch.float64)
    if x.dim() == 4:
        x = x[:, :, None]
    batch, channels, frames, height, width = x.shape
    grid_h, grid_w = height // patch, width // patch
    # (B, C, T, Hp, p, Wp, p) -> (B, T, Hp, Wp, C, p, p): one row per patch in (C, kh, kw) order
    patches = x.reshape(batch, channels, frames, grid_h, patch, grid_w, patch).permute(0, 2, 3, 5, 1, 4, 6)
    patches = patches.reshape(batch, frames * grid_h * grid_w, channels * patch * patch)
    tokens = patches @ sd["embeddings.patch_embedding.weight"].reshape(hidden, -1).T
    tokens = F.layer_norm(tokens, (hidden,), sd["layernorm_pre.weight"], sd["layernorm_pre.bias"], eps)
    select, positions = _positions(config, frames, grid_h, grid_w, visible_indices, patch_positions, tokens)
    if select is not None:
        tokens = torch.stack([tokens[b, select[b]] for b in range(batch)])
    states = [tokens]
    head_dim = hidden // heads
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layers.{i}."
        h = F.layer_norm(tokens, (hidden,), sd[p + "layer_norm1.weight"], sd[p + "layer_norm1.bias"], eps)

        def proj(name, h=h, p=p):
            y = h @ sd[f"{p}self_attn.{name}.weight"].T + sd[f"{p}self_attn.{name}.bias"]
            return y.reshape(batch, -1, heads, head_dim).transpose(1, 2)

        q = _rope(proj("q_proj"), positions, config["rope_theta"])
        k = _rope(proj("k_proj"), positions, config["rope_theta"])
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), -1) @ proj("v_proj")
        attn = attn.transpose(1, 2).reshape(batch, -1, hidden)
        tokens = tokens + attn @ sd[p + "self_attn.out_proj.weight"].T + sd[p + "self_attn.out_proj.bias"]
        h = F.layer_norm(tokens, (hidden,), sd[p + "layer_norm2.weight"], sd[p + "layer_norm2.bias"], eps)
        h = F.gelu(h @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
        tokens = tokens + h @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]
        states.append(tokens)
    if not config["use_head"]:
        return tokens, None, states
    last = F.layer_norm(tokens, (hidden,), sd["layernorm_post.weight"], sd["layernorm_post.bias"], eps)
    w_q, w_k, w_v = sd["head.attention.in_proj_weight"].chunk(3)
    b_q, b_k, b_v = sd["head.attention.in_proj_bias"].chunk(3)
    probe = sd["head.probe"].expand(batch, -1, -1)

    def split(y):
        return y.reshape(batch, -1, heads, head_dim).transpose(1, 2)

    q, k, v = split(probe @ w_q.T + b_q), split(last @ w_k.T + b_k), split(last @ w_v.T + b_v)
    a = (torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), -1) @ v).transpose(1, 2).reshape(batch, 1, -1)
    a = a @ sd["head.attention.out_proj.weight"].T + sd["head.attention.out_proj.bias"]
    normed = a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + eps) * sd["head.norm.weight"]
    mlp = F.gelu(normed @ sd["head.mlp.fc1.weight"].T + sd["head.mlp.fc1.bias"])
    pooled = a + mlp @ sd["head.mlp.fc2.weight"].T + sd["head.mlp.fc2.bias"]
    return last, pooled[:, 0], states
