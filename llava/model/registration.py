"""Registration of our model classes with the transformers Auto classes (idempotent)."""

from __future__ import annotations

from transformers import AutoConfig, AutoModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .onevision_encoder import OneVisionEncoderConfig, OneVisionEncoderModel


def register_auto_classes() -> None:
    """Maps ``model_type`` ``onevision_encoder`` to our config and model. Safe to call more than once."""
    if OneVisionEncoderConfig.model_type not in CONFIG_MAPPING:
        AutoConfig.register(OneVisionEncoderConfig.model_type, OneVisionEncoderConfig)
        AutoModel.register(OneVisionEncoderConfig, OneVisionEncoderModel)
