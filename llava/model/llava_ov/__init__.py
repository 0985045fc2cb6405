"""LLaVA-OV: OneVision-Encoder ViT -> mlp2x_gelu projector -> Qwen3 (configuration, model, checkpoints)."""

from .configuration_llava_ov import LlavaOVConfig, vision_tower_config
from .modeling_llava_ov import (
    LlavaOVCausalLMOutputWithPast,
    LlavaOVForConditionalGeneration,
    LlavaOVModel,
    LlavaOVModelOutputWithPast,
    LlavaOVPreTrainedModel,
)
from .projector import LlavaOVMultiModalProjector

__all__ = [
    "LlavaOVCausalLMOutputWithPast",
    "LlavaOVConfig",
    "LlavaOVForConditionalGeneration",
    "LlavaOVModel",
    "LlavaOVModelOutputWithPast",
    "LlavaOVMultiModalProjector",
    "LlavaOVPreTrainedModel",
    "vision_tower_config",
]
