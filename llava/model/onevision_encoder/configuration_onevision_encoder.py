"""Configuration of the OneVision-Encoder ViT (spec: shared/specs/ov_encoder.md section 1).

Field names and defaults are those of the published checkpoints' ``config.json`` so that an upstream folder
loads without a key map. Two fields are ours: ``rope_compute_dtype`` (the cos/sin precision switch of section 4)
and nothing else is added to the serialized format that upstream code could not read back.
"""

from __future__ import annotations

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


@strict
class OneVisionEncoderConfig(PreTrainedConfig):
    r"""
    hidden_size / intermediate_size / num_hidden_layers / num_attention_heads: ViT width, MLP width, depth, heads
        (the published `large` models: 1024 / 4096 / 24 / 16, head_dim 64).
    patch_size: Conv2d kernel and stride in pixels (14 for every published model).
    image_size: informational only; the forward pass accepts any multiple of `patch_size`.
    layer_norm_type: `"layer_norm"` (published) or `"rms_norm"`.
    rope_theta: RoPE base of the 3-D rotary embedding (split t:h:w = 4:6:6 of the frequency slots).
    rope_temporal_size: slots of the temporal RoPE grid used for 5-D input (64); `None` uses the real frame count.
    use_head: whether the model has `layernorm_post` and the attention-pooling head (`-large`: true,
        `-large-lang`: false).
    rope_compute_dtype: precision of the rotation. `"float32"`: q/k upcast to fp32, rotated, cast back (the hub
        `-large` files); `"activation"`: cos/sin cast to the activation dtype (`-large-lang`). `None` picks
        `"float32"` with the head and `"activation"` without, as upstream does. Identical in fp32.

    ```python
    >>> from llava.model import OneVisionEncoderConfig, OneVisionEncoderModel
    >>> config = OneVisionEncoderConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
    ...                                 num_attention_heads=2)
    >>> model = OneVisionEncoderModel(config)
    ```
    """

    model_type = "onevision_encoder"
    base_config_key = "vision_config"

    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_channels: int = 3
    image_size: int = 448
    patch_size: int = 14
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    layer_norm_type: Literal["layer_norm", "rms_norm"] = "layer_norm"
    attention_dropout: float | int = 0.0
    initializer_range: float = 0.02
    rope_theta: float = 10000.0
    rope_temporal_size: int | None = 64
    use_head: bool = True
    rope_compute_dtype: Literal["float32", "activation"] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        head_dim, rest = divmod(self.hidden_size, self.num_attention_heads)
        if rest or head_dim % 32:
            # The 4:6:6 split needs half the head dimension divisible by 16 (section 4).
            raise ValueError(
                f"OneVisionEncoderConfig: hidden_size ({self.hidden_size}) / num_attention_heads "
                f"({self.num_attention_heads}) must be an integer multiple of 32 for the 3-D RoPE split"
            )
        if self.rope_temporal_size is not None and self.rope_temporal_size < 1:
            raise ValueError(f"OneVisionEncoderConfig: rope_temporal_size must be >= 1, got {self.rope_temporal_size}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def resolved_rope_compute_dtype(self) -> str:
        if self.rope_compute_dtype is not None:
            return self.rope_compute_dtype
        return "float32" if self.use_head else "activation"


__all__ = ["OneVisionEncoderConfig"]
