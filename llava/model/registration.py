"""Registration of our model classes with the transformers Auto classes (idempotent)."""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .llava_ov import LlavaOVConfig, LlavaOVForConditionalGeneration, LlavaOVModel
from .llava_ov.processing_llava_ov import LlavaOVProcessor
from .onevision_encoder import OneVisionEncoderConfig, OneVisionEncoderModel
from .onevision_encoder.image_processing_onevision_encoder import register_image_processor

# Checkpoints saved from a torch.compile'd encoder carry an `encoder._orig_mod.` prefix (spec section 3). Pass this
# as `from_pretrained(..., key_mapping=COMPILED_PREFIX_KEY_MAPPING)`. It is not registered as a default conversion:
# transformers reverses registered conversions on save, which would write the prefix into every checkpoint.
COMPILED_PREFIX_KEY_MAPPING = {r"encoder\._orig_mod\.": "encoder."}


def register_auto_classes() -> None:
    """Maps ``model_type`` ``onevision_encoder`` (config, model, image processor) and ``llava_ov`` (config, base
    model, generation model, processor) to our classes. Idempotent."""
    if OneVisionEncoderConfig.model_type not in CONFIG_MAPPING:
        AutoConfig.register(OneVisionEncoderConfig.model_type, OneVisionEncoderConfig)
        AutoModel.register(OneVisionEncoderConfig, OneVisionEncoderModel)
    register_image_processor()
    # The LLaVA-OV composite (issue 4): `model_type` llava_ov. AutoModelForCausalLM too, because generic text tools
    # (lmms-eval, peft helpers) reach for it; it loads the full multimodal model, not a text-only Qwen3.
    if LlavaOVConfig.model_type not in CONFIG_MAPPING:
        AutoConfig.register(LlavaOVConfig.model_type, LlavaOVConfig)
        AutoModel.register(LlavaOVConfig, LlavaOVModel)
        AutoModelForImageTextToText.register(LlavaOVConfig, LlavaOVForConditionalGeneration)
        AutoModelForCausalLM.register(LlavaOVConfig, LlavaOVForConditionalGeneration)
        AutoProcessor.register(LlavaOVConfig, LlavaOVProcessor)
