"""The ``mlp2x_gelu`` projector: encoder features -> LLM embeddings, one token per patch (spec section 2.3)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import ACT2FN

from .configuration_llava_ov import LlavaOVConfig


class LlavaOVMultiModalProjector(nn.Module):
    """``linear_2(act(linear_1(x)))``: [..., vision hidden (1024)] -> [..., text hidden H] (H = 2048 for Qwen3-1.7B).

    Upstream names the same layers ``mm_projector.0`` and ``mm_projector.2`` (an ``nn.Sequential`` with the GELU at
    index 1); ``conversion.py`` maps them.
    """

    def __init__(self, config: LlavaOVConfig) -> None:
        super().__init__()
        vision_hidden, text_hidden = config.vision_config.hidden_size, config.text_config.hidden_size
        self.linear_1 = nn.Linear(vision_hidden, text_hidden, bias=config.multimodal_projector_bias)
        self.act = ACT2FN[config.projector_hidden_act]  # "gelu" is the exact erf GELU, as upstream's nn.GELU()
        self.linear_2 = nn.Linear(text_hidden, text_hidden, bias=config.multimodal_projector_bias)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(image_features)))


__all__ = ["LlavaOVMultiModalProjector"]
