"""Registration of our model classes with the transformers Auto classes (idempotent)."""

from __future__ import annotations

from transformers import AutoConfig, AutoModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .onevision_encoder import OneVisionEncoderConfig, OneVisionEncoderModel
from .onevision_encoder.image_processing_onevision_encoder import register_image_processor

# Checkpoints saved from a torch.compile'd encoder carry an `encoder._orig_mod.` prefix (spec section 3). Pass this
# as `from_pretrained(..., key_mapping=COMPILED_PREFIX_KEY_MAPPING)`. It is not registered as a default conversion:
# transformers reverses registered conversions on save, which would write the prefix into every checkpoint.
COMPILED_PREFIX_KEY_MAPPING = {r"encoder\._orig_mod\.": "encoder."}


def register_auto_classes() -> None:
    """Maps ``model_type`` ``onevision_encoder`` to our config, model and image processor. Idempotent."""
    if OneVisionEncoderConfig.model_type not in CONFIG_MAPPING:
        AutoConfig.register(OneVisionEncoderConfig.model_type, OneVisionEncoderConfig)
        AutoModel.register(OneVisionEncoderConfig, OneVisionEncoderModel)
    register_image_processor()
