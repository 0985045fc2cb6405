"""Configuration of the LLaVA-OV composite: OneVision-Encoder ViT -> mlp2x_gelu projector -> Qwen3 LM.

Spec: shared/specs/llava_model_and_training.md sections 2 and 9.1. Unlike upstream (a ``Qwen3Config`` saved with
``model_type: qwen3`` plus ``mm_*`` fields), the saved ``config.json`` says ``model_type: llava_ov`` and nests the two
sub-configurations, so ``AutoConfig`` / ``AutoModelForImageTextToText`` load it without folder-name dispatch.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig, Qwen3Config

from ..onevision_encoder import OneVisionEncoderConfig


@strict
class LlavaOVConfig(PreTrainedConfig):
    r"""
    vision_config: the OneVision-Encoder as published (depth, head). The model builds only the layers that
        `vision_feature_layer` needs and never the head (see `vision_tower_config`).
    text_config: the Qwen3 language model (`Qwen3Config`).
    image_token_id: id of the placeholder token (`<|image_pad|>` in Qwen's vocabulary, 151655). Every image/video
        patch fills exactly one placeholder; resolve it from the tokenizer, never hard-code it.
    vision_feature_layer: index into the encoder's `hidden_states` (num_hidden_layers + 1 entries, [0] = after
        `layernorm_pre`). -2 = output of the second-to-last layer, before `layernorm_post` (upstream).
    projector_hidden_act: activation between the two projector linears (`mlp2x_gelu`: exact GELU).
    multimodal_projector_bias: whether the projector linears have a bias (upstream: yes).
    tie_word_embeddings: `lm_head` shares the input embedding matrix. `None` takes `text_config.tie_word_embeddings`
        (Qwen3-1.7B and -4B are tied).

    ```python
    >>> from llava.model import LlavaOVConfig, OneVisionEncoderConfig
    >>> from transformers import Qwen3Config
    >>> config = LlavaOVConfig(
    ...     vision_config=OneVisionEncoderConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
    ...                                          num_attention_heads=2),
    ...     text_config=Qwen3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    ...                             num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=512),
    ...     image_token_id=5,
    ... )
    ```
    """

    model_type = "llava_ov"
    sub_configs_defaults = {"vision_config": OneVisionEncoderConfig, "text_config": Qwen3Config}
    keys_to_ignore_at_inference = ["past_key_values"]

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    image_token_id: int = 151655
    vision_feature_layer: int = -2
    projector_hidden_act: str = "gelu"
    multimodal_projector_bias: bool = True
    tie_word_embeddings: bool | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.tie_word_embeddings is None:
            self.tie_word_embeddings = bool(self.text_config.tie_word_embeddings)
        # Validate early: a bad index would otherwise only fail when the tower is built.
        count_vision_layers_used(self.vision_config.num_hidden_layers, self.vision_feature_layer)

    @property
    def num_vision_layers_used(self) -> int:
        """Encoder layers the model builds and runs for `vision_feature_layer` (23 of 24 for -2)."""
        return count_vision_layers_used(self.vision_config.num_hidden_layers, self.vision_feature_layer)


def count_vision_layers_used(num_hidden_layers: int, vision_feature_layer: int) -> int:
    """Layers needed so that the last one outputs `hidden_states[vision_feature_layer]` (= output of layer k)."""
    needed = vision_feature_layer if vision_feature_layer >= 0 else num_hidden_layers + 1 + vision_feature_layer
    if not 0 <= needed <= num_hidden_layers:
        raise ValueError(
            f"LlavaOVConfig: vision_feature_layer={vision_feature_layer} is outside the encoder's hidden_states "
            f"(num_hidden_layers={num_hidden_layers}: valid indices {-(num_hidden_layers + 1)}..{num_hidden_layers})"
        )
    return needed


def vision_tower_config(config: LlavaOVConfig) -> OneVisionEncoderConfig:
    """The encoder configuration the model builds: truncated to `vision_feature_layer`, no post-norm or head.

    Its `last_hidden_state` then equals `hidden_states[vision_feature_layer]` of the full encoder. The RoPE precision
    is pinned to what the full encoder resolves to, because `use_head=False` would otherwise switch the default
    (`-large` rotates in float32; spec ov_encoder.md section 4).
    """
    vision = config.vision_config
    fields = vision.to_dict()
    fields.update(
        num_hidden_layers=config.num_vision_layers_used,
        use_head=False,
        rope_compute_dtype=vision.resolved_rope_compute_dtype,
    )
    tower = OneVisionEncoderConfig.from_dict(fields)
    # from_dict does not carry the attention choice; keep the sub-config's so sdpa/flash settings reach the tower.
    tower._attn_implementation = vision._attn_implementation
    return tower


__all__ = ["LlavaOVConfig", "vision_tower_config"]
