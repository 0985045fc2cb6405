"""Model code: the OneVision-Encoder and (later) the LLaVA-OV composite. Importing it registers the classes with
the transformers Auto classes, so ``AutoModel.from_pretrained(folder)`` loads upstream-format folders without
``trust_remote_code``."""

from .onevision_encoder import (
    OneVisionEncoderConfig,
    OneVisionEncoderImageProcessor,
    OneVisionEncoderModel,
    OneVisionEncoderModelOutput,
    OneVisionEncoderPreTrainedModel,
)
from .registration import register_auto_classes

register_auto_classes()

__all__ = [
    "OneVisionEncoderConfig",
    "OneVisionEncoderImageProcessor",
    "OneVisionEncoderModel",
    "OneVisionEncoderModelOutput",
    "OneVisionEncoderPreTrainedModel",
    "register_auto_classes",
]
