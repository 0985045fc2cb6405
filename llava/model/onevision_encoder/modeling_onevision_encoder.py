"""OneVision-Encoder: a pre-LN ViT whose only positional signal is a 3-D RoPE on a 64-frame timeline.

Spec: shared/specs/ov_encoder.md. Parameter names equal the published checkpoints' state-dict keys (section 3), so
upstream folders load with ``from_pretrained`` and no key map. Attention goes through transformers' attention
interface (``eager``, ``sdpa`` (default), ``flash_attention_2``); a packed call encodes several images/videos of
different sizes in one sequence with ``cu_seqlens`` and no padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from ..safe_weights import SafetensorsOnlyMixin
from .configuration_onevision_encoder import OneVisionEncoderConfig
from .positions import check_patch_positions, check_visible_indices, dense_positions, grid_positions
from .rope import OneVisionEncoderRotaryEmbedding, apply_rotary
from .weight_check import ignored_checkpoint_keys, raise_on_unloaded_weights


@dataclass
class OneVisionEncoderModelOutput(BaseModelOutputWithPooling):
    """``BaseModelOutputWithPooling`` plus ``cu_seqlens`` [num_items + 1] (int32) for a packed call.

    In a packed call ``last_hidden_state`` and each ``hidden_states`` entry are [1, total_tokens, hidden] and
    ``pooler_output`` is [num_items, hidden]; item i owns tokens ``cu_seqlens[i]:cu_seqlens[i + 1]``.
    """

    cu_seqlens: torch.Tensor | None = None


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T * scaling) v; q/k/v [B, heads, L, head_dim] -> output [B, L, heads, head_dim], weights.

    The softmax runs in fp32 (upstream's eager path skips the upcast, but its reference numbers come from CUDA
    autocast, where softmax is fp32 too; in fp32 both are identical).
    """
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def _is_flash_attention(implementation: str | None) -> bool:
    return implementation is not None and "flash" in implementation


class OneVisionEncoderEmbeddings(nn.Module):
    """Conv2d patch embedding (no bias) applied frame by frame: [B, C, T, H, W] -> [B, T * Hp * Wp, D]."""

    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.patch_embedding = nn.Conv2d(
            config.num_channels,
            config.hidden_size,
            kernel_size=config.patch_size,
            stride=config.patch_size,
            bias=False,
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = pixel_values.shape
        frames_first = pixel_values.transpose(1, 2).reshape(batch * frames, channels, height, width)
        patches = self.patch_embedding(frames_first.to(self.patch_embedding.weight.dtype))  # (B*T, D, Hp, Wp)
        patches = patches.flatten(2).transpose(1, 2)  # (B*T, Hp*Wp, D), row-major
        return patches.reshape(batch, -1, patches.shape[-1])  # (B, T*Hp*Wp, D), frame-major


def _norm(config: OneVisionEncoderConfig) -> nn.Module:
    if config.layer_norm_type == "rms_norm":
        return nn.RMSNorm(config.hidden_size, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class OneVisionEncoderAttention(nn.Module):
    """Bidirectional multi-head self-attention with 3-D RoPE on q and k."""

    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.num_key_value_groups = 1
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        cu_seqlens: torch.Tensor | None = None,
        max_seqlen: int | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)  # (B, heads, L, head_dim)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        cos, sin = position_embeddings
        query, key = apply_rotary(query, key, cos, sin, compute_dtype=self.config.resolved_rope_compute_dtype)

        implementation = self.config._attn_implementation
        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        common = {
            "attention_mask": None,
            "scaling": self.scaling,
            "dropout": self.config.attention_dropout if self.training else 0.0,
            "is_causal": False,
        }
        if cu_seqlens is None:
            output, weights = attention(self, query, key, value, **common, **kwargs)
        elif _is_flash_attention(implementation):
            # Flash attention takes the packed sequence as is: one varlen call, no padding, no mask.
            output, weights = attention(
                self, query, key, value, cu_seq_lens_q=cu_seqlens, cu_seq_lens_k=cu_seqlens,
                max_length_q=max_seqlen, max_length_k=max_seqlen, **common, **kwargs,
            )  # fmt: skip
        else:
            # SDPA/eager have no varlen kernel on every device: attend within each item (exact, no L^2 mask).
            lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
            chunks = zip(*(tensor.split(lengths, dim=2) for tensor in (query, key, value)), strict=True)
            output = torch.cat([attention(self, q, k, v, **common, **kwargs)[0] for q, k, v in chunks], dim=1)
            weights = None
        output = output.reshape(batch, length, -1).contiguous()
        return self.out_proj(output), weights


class OneVisionEncoderMLP(nn.Module):
    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]  # "gelu" is the exact erf GELU
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class OneVisionEncoderEncoderLayer(GradientCheckpointingLayer):
    """Pre-LN block: ``x + attn(LN1(x))`` then ``x + mlp(LN2(x))``."""

    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.self_attn = OneVisionEncoderAttention(config)
        self.layer_norm1 = _norm(config)
        self.mlp = OneVisionEncoderMLP(config)
        self.layer_norm2 = _norm(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        cu_seqlens: torch.Tensor | None = None,
        max_seqlen: int | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.self_attn(
            self.layer_norm1(hidden_states), position_embeddings, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen,
            **kwargs,
        )  # fmt: skip
        hidden_states = hidden_states + attended
        hidden_states = hidden_states + self.mlp(self.layer_norm2(hidden_states))
        return hidden_states, weights


class OneVisionEncoderEncoder(nn.Module):
    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(OneVisionEncoderEncoderLayer(config) for _ in range(config.num_hidden_layers))


class OneVisionEncoderPoolingHead(nn.Module):
    """Attention pooling by a learned probe: ``a = MHA(probe, x, x)``; ``a + MLP(RMSNorm(a))`` -> [B, D]."""

    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.empty(1, 1, config.hidden_size))
        self.attention = nn.MultiheadAttention(config.hidden_size, config.num_attention_heads, batch_first=True)
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = OneVisionEncoderMLP(config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        probe = self.probe.expand(hidden_states.shape[0], -1, -1)
        attended = self.attention(probe, hidden_states, hidden_states, need_weights=False)[0]  # (B, 1, D)
        # The residual is the attention output, not the probe (spec section 2).
        return (attended + self.mlp(self.norm(attended)))[:, 0]


class OneVisionEncoderPreTrainedModel(SafetensorsOnlyMixin, PreTrainedModel):
    config_class = OneVisionEncoderConfig
    config: OneVisionEncoderConfig
    base_model_prefix = "onevision_encoder"
    main_input_name = "pixel_values"
    input_modalities = ("image", "video")
    supports_gradient_checkpointing = True
    _no_split_modules = ["OneVisionEncoderEncoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = False
    _supports_attention_backend = True
    # Published folders may carry weights this configuration does not use: the head and post-norm of `-large`
    # when loaded with use_head=False, trailing layers when truncated (LLaVA needs only hidden_states[-2]), and
    # stale RoPE buffers written by other tools (frequencies are recomputed, never loaded). Only layers past
    # `num_hidden_layers` are ignored (set per instance); anything else unknown or missing is an error at load.
    _keys_to_ignore_on_load_unexpected = [r"^head\.", r"^layernorm_post\.", r"inv_freq"]

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.from_pretrained`, then `ValueError` if an encoder weight stayed random (missing from the
        folder, or stored under a name this model does not know): see `weight_check.py`."""
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        raise_on_unloaded_weights(info, source=source)
        return (model, info) if want_info else model

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
            init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, OneVisionEncoderPoolingHead):
            init.normal_(module.probe, mean=0.0, std=std)
            init.normal_(module.attention.in_proj_weight, mean=0.0, std=std)
            init.zeros_(module.attention.in_proj_bias)


class OneVisionEncoderModel(OneVisionEncoderPreTrainedModel):
    """The OneVision-Encoder ViT.

    ``forward`` takes a batch (``pixel_values`` [B, C, H, W] or [B, C, T, H, W]) or a packed list of items of
    different sizes (each [C, H, W] or [C, T, H, W]); see :meth:`forward`.
    """

    def __init__(self, config: OneVisionEncoderConfig) -> None:
        super().__init__(config)
        self.embeddings = OneVisionEncoderEmbeddings(config)
        self.layernorm_pre = _norm(config)
        self.video_rope = OneVisionEncoderRotaryEmbedding(config.head_dim, config.rope_theta)
        self.encoder = OneVisionEncoderEncoder(config)
        if config.use_head:
            self.layernorm_post = _norm(config)
            self.head = OneVisionEncoderPoolingHead(config)
        self.gradient_checkpointing = False
        self._keys_to_ignore_on_load_unexpected = ignored_checkpoint_keys(config.num_hidden_layers)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def _embed(
        self,
        pixel_values: torch.Tensor,
        visible_indices: torch.Tensor | None,
        patch_positions: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch-embeds a batch and resolves its positions: -> tokens [B, L, D], positions float32 [B, L, 3]."""
        if pixel_values.dim() == 4:
            pixel_values = pixel_values.unsqueeze(2)  # an image is a one-frame clip with a one-frame RoPE grid
            grid_frames = 1
        elif pixel_values.dim() == 5:
            grid_frames = self.config.rope_temporal_size or pixel_values.shape[2]
        else:
            raise ValueError(
                f"pixel_values must be [B, C, H, W] (image) or [B, C, T, H, W] (video), got shape "
                f"{list(pixel_values.shape)}"
            )
        batch, channels, frames, height, width = pixel_values.shape
        patch = self.config.patch_size
        if channels != self.config.num_channels:
            raise ValueError(f"pixel_values has {channels} channels, the model expects {self.config.num_channels}")
        if height % patch or width % patch or height == 0 or width == 0:
            raise ValueError(
                f"pixel_values height and width must be positive multiples of patch_size={patch}, got {height}x{width}"
            )
        if visible_indices is not None and patch_positions is not None:
            raise ValueError(
                "pass either visible_indices (positions on the RoPE grid) or patch_positions (explicit t, h, w), "
                "not both"
            )
        grid_h, grid_w = height // patch, width // patch
        hidden_states = self.layernorm_pre(self.embeddings(pixel_values))  # (B, T*Hp*Wp, D)
        num_tokens = hidden_states.shape[1]

        if patch_positions is not None:
            positions = check_patch_positions(
                patch_positions.to(hidden_states.device), batch=batch, num_tokens=num_tokens,
                temporal_size=self.config.rope_temporal_size,
            )  # fmt: skip
        elif visible_indices is not None:
            visible_indices = check_visible_indices(
                visible_indices.to(hidden_states.device), batch=batch, num_tokens=num_tokens,
                grid_size=grid_frames * grid_h * grid_w,
            )  # fmt: skip
            if visible_indices.shape[1] != num_tokens:
                # Gather case: pixel_values hold the whole clip, keep only the listed tokens (LN is per token, so
                # gathering after layernorm_pre equals gathering before it).
                index = visible_indices.unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1])
                hidden_states = hidden_states.gather(1, index)
            positions = grid_positions(visible_indices, grid_h=grid_h, grid_w=grid_w)
        else:
            if frames > grid_frames:
                raise ValueError(
                    f"a dense video of {frames} frames does not fit the {grid_frames}-frame RoPE grid "
                    "(rope_temporal_size); pass patch_positions with t mapped onto the grid "
                    "(e.g. t = linspace(0, 63, T).long()), or sample at most that many frames"
                )
            positions = dense_positions(
                batch=batch, frames=frames, grid_h=grid_h, grid_w=grid_w, device=hidden_states.device
            )
        return hidden_states, positions

    def _embed_packed(
        self,
        pixel_values: Sequence[torch.Tensor],
        visible_indices: Sequence[torch.Tensor | None] | None,
        patch_positions: Sequence[torch.Tensor | None] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embeds items one by one and concatenates them: tokens [1, total, D], positions [1, total, 3], cu_seqlens."""
        count = len(pixel_values)
        if count == 0:
            raise ValueError("pixel_values is an empty list")
        for name, values in (("visible_indices", visible_indices), ("patch_positions", patch_positions)):
            if values is not None and len(values) != count:
                raise ValueError(f"{name} has {len(values)} entries for {count} items of pixel_values")
        tokens, positions = [], []
        for i, item in enumerate(pixel_values):
            if item.dim() not in (3, 4):
                raise ValueError(
                    f"packed pixel_values[{i}] must be [C, H, W] or [C, T, H, W], got shape {list(item.shape)}"
                )
            indices = visible_indices[i] if visible_indices is not None else None
            explicit = patch_positions[i] if patch_positions is not None else None
            item_tokens, item_positions = self._embed(
                item.unsqueeze(0),
                indices.unsqueeze(0) if indices is not None else None,
                explicit.unsqueeze(0) if explicit is not None else None,
            )
            tokens.append(item_tokens)
            positions.append(item_positions)
        lengths = torch.tensor([0] + [t.shape[1] for t in tokens], device=tokens[0].device)
        cu_seqlens = lengths.cumsum(0, dtype=torch.int32)
        return torch.cat(tokens, dim=1), torch.cat(positions, dim=1), cu_seqlens

    def forward(
        self,
        pixel_values: torch.Tensor | Sequence[torch.Tensor],
        visible_indices: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
        patch_positions: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> OneVisionEncoderModelOutput | tuple:
        r"""
        pixel_values: images [B, C, H, W] (any H, W that are multiples of ``patch_size``) or videos
            [B, C, T, H, W]; or a list of items [C, H, W] / [C, T, H, W] of different sizes, encoded packed in one
            sequence (``cu_seqlens``, no padding) and equal to encoding them one by one.
        visible_indices: int [B, K] (or a list of [K_i]) indices into the (t, h, w) grid of the input, with a
            ``rope_temporal_size``-frame grid for videos. K != N gathers those tokens; K == N keeps the token order
            and only sets the positions (packed mosaics).
        patch_positions: [B, N, 3] (or a list of [N_i, 3]) explicit (t, h, w) per token.

        Returns ``last_hidden_state`` [B, L, D] (after ``layernorm_post`` when the model has the head),
        ``pooler_output`` [B, D] or None, ``hidden_states`` (num_hidden_layers + 1 entries; [0] after
        ``layernorm_pre`` and any gather, [-1] the last layer before ``layernorm_post``).
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        if isinstance(pixel_values, (list, tuple)):
            hidden_states, positions, cu_seqlens = self._embed_packed(pixel_values, visible_indices, patch_positions)
            max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max())
        else:
            hidden_states, positions = self._embed(pixel_values, visible_indices, patch_positions)
            cu_seqlens, max_seqlen = None, None

        cos, sin = self.video_rope(positions)  # float32 (B, L, head_dim)
        position_embeddings = (cos.unsqueeze(1), sin.unsqueeze(1))  # broadcast over heads

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.encoder.layers:
            hidden_states, weights = layer(
                hidden_states, position_embeddings, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen,
                output_attentions=output_attentions, **kwargs,
            )  # fmt: skip
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (weights,)

        pooled = None
        if self.config.use_head:
            hidden_states = self.layernorm_post(hidden_states)
            if cu_seqlens is None:
                pooled = self.head(hidden_states)
            else:
                lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
                pooled = torch.cat([self.head(item) for item in hidden_states.split(lengths, dim=1)], dim=0)

        if not return_dict:
            extra = tuple(v for v in (all_hidden_states, all_attentions) if v is not None)
            return (hidden_states, pooled) + extra
        return OneVisionEncoderModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=pooled,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            cu_seqlens=cu_seqlens,
        )


__all__ = ["OneVisionEncoderModel", "OneVisionEncoderPreTrainedModel", "OneVisionEncoderModelOutput"]
