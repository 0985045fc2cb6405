"""Named OneVision-Encoder configurations (spec section 1). Only `large` and `large_lang` are published."""

from __future__ import annotations

from typing import Any

from .configuration_onevision_encoder import OneVisionEncoderConfig


def onevision_encoder_large(**overrides: Any) -> OneVisionEncoderConfig:
    """`lmms-lab-encoder/onevision-encoder-large`: ViT-L/14, 1024 wide, 24 layers, pooling head."""
    return OneVisionEncoderConfig(**{"use_head": True, **overrides})


def onevision_encoder_large_lang(**overrides: Any) -> OneVisionEncoderConfig:
    """`lmms-lab-encoder/onevision-encoder-large-lang`: the LLM-aligned ViT-L/14, no head or post-norm."""
    return OneVisionEncoderConfig(**{"use_head": False, **overrides})


def onevision_encoder_base(**overrides: Any) -> OneVisionEncoderConfig:
    """ViT-B/14 (registered upstream, not published): 768 wide, 12 layers, 12 heads."""
    fields = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
    return OneVisionEncoderConfig(**{**fields, **overrides})


def onevision_encoder_huge(**overrides: Any) -> OneVisionEncoderConfig:
    """ViT-H/14 (registered upstream, not published): 1280 wide, 32 layers, 20 heads."""
    fields = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 20}
    return OneVisionEncoderConfig(**{**fields, **overrides})


def onevision_encoder_tiny(**overrides: Any) -> OneVisionEncoderConfig:
    """A 2-layer, 128-wide model for tests and CPU smoke runs (same RoPE split and head_dim 64 as `large`)."""
    fields = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2}
    return OneVisionEncoderConfig(**{**fields, **overrides})


PRESETS = {
    "large": onevision_encoder_large,
    "large_lang": onevision_encoder_large_lang,
    "base": onevision_encoder_base,
    "huge": onevision_encoder_huge,
    "tiny": onevision_encoder_tiny,
}
