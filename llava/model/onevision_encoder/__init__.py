"""The OneVision-Encoder ViT: configuration, model, image processor."""

from .configuration_onevision_encoder import OneVisionEncoderConfig
from .image_processing_onevision_encoder import OneVisionEncoderImageProcessor
from .modeling_onevision_encoder import (
    OneVisionEncoderModel,
    OneVisionEncoderModelOutput,
    OneVisionEncoderPreTrainedModel,
)

__all__ = [
    "OneVisionEncoderConfig",
    "OneVisionEncoderImageProcessor",
    "OneVisionEncoderModel",
    "OneVisionEncoderModelOutput",
    "OneVisionEncoderPreTrainedModel",
]
