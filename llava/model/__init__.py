"""Model code: the OneVision-Encoder and the LLaVA-OV composite (OV-Encoder -> projector -> Qwen3). Importing it
registers the classes with the transformers Auto classes, so ``AutoModel.from_pretrained(folder)`` loads
upstream-format encoder folders and our LLaVA-OV folders without ``trust_remote_code``."""

from .llava_ov import (
    LlavaOVConfig,
    LlavaOVForConditionalGeneration,
    LlavaOVModel,
    LlavaOVPreTrainedModel,
)
from .llava_ov.processing_llava_ov import LlavaOVProcessor
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
    "LlavaOVConfig",
    "LlavaOVForConditionalGeneration",
    "LlavaOVModel",
    "LlavaOVPreTrainedModel",
    "LlavaOVProcessor",
    "OneVisionEncoderConfig",
    "OneVisionEncoderImageProcessor",
    "OneVisionEncoderModel",
    "OneVisionEncoderModelOutput",
    "OneVisionEncoderPreTrainedModel",
    "register_auto_classes",
]
