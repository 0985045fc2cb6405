"""The OneVision-Encoder ViT: configuration, model, image processor."""

from .configuration_onevision_encoder import OneVisionEncoderConfig
from .modeling_onevision_encoder import (
    OneVisionEncoderModel,
    OneVisionEncoderModelOutput,
    OneVisionEncoderPreTrainedModel,
)

__all__ = [
    "OneVisionEncoderConfig",
    "OneVisionEncoderModel",
    "OneVisionEncoderModelOutput",
    "OneVisionEncoderPreTrainedModel",
]
