"""LLaVA-OV: OneVision-Encoder ViT -> ``mlp2x_gelu`` projector -> Qwen3, fused by placeholder tokens.

Spec: shared/specs/llava_model_and_training.md sections 2 and 9.1; contract: one visual item (an image, or a video
encoded jointly as one ViT sequence) yields one LLM token per patch, written into the ``config.image_token_id``
placeholders of ``input_ids`` in order of appearance. The split mirrors transformers' LLaVA:

* ``LlavaOVModel`` (state-dict prefix ``model.``): ``vision_tower`` (``OneVisionEncoderModel``, truncated to
  ``vision_feature_layer``, no head; encoder key names unchanged), ``multi_modal_projector`` (``linear_1``,
  ``linear_2``), ``language_model`` (``Qwen3Model``: ``embed_tokens``, ``layers``, ``norm``);
* ``LlavaOVForConditionalGeneration``: ``model`` + ``lm_head`` (tied to ``model.language_model.embed_tokens`` when
  ``config.tie_word_embeddings``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from transformers.modeling_outputs import BaseModelOutputWithPast, ModelOutput
from transformers.modeling_utils import slice_logits_to_keep
from transformers.utils.generic import can_return_tuple

from ..onevision_encoder import OneVisionEncoderModel
from ..onevision_encoder.weight_check import raise_on_unloaded_weights
from ..safe_weights import SafetensorsOnlyMixin
from .configuration_llava_ov import LlavaOVConfig, vision_tower_config
from .projector import LlavaOVMultiModalProjector

VisualItems = Sequence[torch.Tensor] | torch.Tensor | None
ItemPositions = Sequence[torch.Tensor | None] | torch.Tensor | None


@dataclass
class LlavaOVModelOutputWithPast(BaseModelOutputWithPast):
    """``BaseModelOutputWithPast`` plus ``image_hidden_states`` [sum N_i, H]: the projected visual tokens."""

    image_hidden_states: torch.Tensor | None = None


@dataclass
class LlavaOVCausalLMOutputWithPast(ModelOutput):
    """loss (scalar, with ``labels``), logits [B, L, vocab], cache, LM hidden states/attentions, and
    ``image_hidden_states`` [sum N_i, H]."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    past_key_values: Cache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    image_hidden_states: torch.Tensor | None = None


def normalize_visual_items(
    pixel_values: VisualItems, patch_positions: ItemPositions
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Returns the visual items as a list and their positions as an aligned list (None = the encoder's grid).

    ``pixel_values``: a list of items, each [C, H, W] (image) or [C, T, H, W] (video); or a batched tensor
    [B, C, H, W] / [B, C, T, H, W] whose dim 0 lists the items. ``patch_positions``: None, a list aligned with the
    items (entries [N_i, 3] or None), or a tensor [B, N, 3]. ``None`` or ``[]`` = no items.
    """
    if pixel_values is None:
        items: list[torch.Tensor] = []
    elif isinstance(pixel_values, torch.Tensor):
        if pixel_values.dim() not in (4, 5):
            raise ValueError(
                "a pixel_values tensor must be [B, C, H, W] or [B, C, T, H, W]; pass a list of items otherwise, got "
                f"shape {list(pixel_values.shape)}"
            )
        items = list(pixel_values.unbind(0))
    else:
        items = list(pixel_values)
    if patch_positions is None:
        positions: list[torch.Tensor | None] = [None] * len(items)
    elif isinstance(patch_positions, torch.Tensor):
        positions = list(patch_positions.unbind(0)) if patch_positions.dim() == 3 else [patch_positions]
    else:
        positions = list(patch_positions)
    if len(positions) != len(items):
        raise ValueError(f"patch_positions has {len(positions)} entries for {len(items)} visual items")
    return items, positions


def group_items_by_sample(
    placeholder_mask: torch.Tensor, items: Sequence[torch.Tensor], *, patch_size: int
) -> list[list[int]]:
    """Indices of the items each row of ``placeholder_mask`` [B, L] owns, from the rows' placeholder counts.

    An item [C, H, W] has (H / p) * (W / p) patches, a video [C, T, H, W] T times that; items fill rows in order.
    """
    counts = placeholder_mask.sum(dim=1).tolist()
    groups: list[list[int]] = []
    index = 0
    for row, count in enumerate(counts):
        group = []
        while count > 0 and index < len(items):
            item = items[index]
            frames = item.shape[1] if item.dim() == 4 else 1
            count -= frames * (item.shape[-2] // patch_size) * (item.shape[-1] // patch_size)
            group.append(index)
            index += 1
        if count != 0:
            raise ValueError(f"row {row}: its image placeholders do not match a whole number of visual items")
        groups.append(group)
    if index != len(items):
        raise ValueError(f"{len(items) - index} visual items are left over after the rows' placeholders")
    return groups


class LlavaOVPreTrainedModel(SafetensorsOnlyMixin, PreTrainedModel):
    config_class = LlavaOVConfig
    config: LlavaOVConfig
    base_model_prefix = "model"
    input_modalities = ("image", "video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["OneVisionEncoderEncoderLayer", "Qwen3DecoderLayer"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = False  # the encoder has no flex path
    _supports_attention_backend = True
    # Visual items are Python lists of different sizes and the fusion checks counts on the host.
    _can_compile_fullgraph = False

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """`PreTrainedModel.from_pretrained`, then `ValueError` if a vision-tower weight stayed random (see
        `onevision_encoder/weight_check.py`)."""
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        tower = "model.vision_tower." if isinstance(model, LlavaOVForConditionalGeneration) else "vision_tower."
        raise_on_unloaded_weights(info, source=source, prefix=tower)
        return (model, info) if want_info else model


class LlavaOVModel(LlavaOVPreTrainedModel):
    """Vision tower + projector + Qwen3 backbone (no LM head); returns the LM's last hidden state."""

    def __init__(self, config: LlavaOVConfig) -> None:
        super().__init__(config)
        self.vision_tower = OneVisionEncoderModel(vision_tower_config(config))
        self.multi_modal_projector = LlavaOVMultiModalProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_image_features(
        self, pixel_values: VisualItems, patch_positions: ItemPositions = None, **kwargs
    ) -> torch.Tensor:
        """Encodes the items in one packed ViT call and projects every patch: -> [sum N_i, H].

        ``pixel_values`` / ``patch_positions`` as in :func:`normalize_visual_items`; item i contributes its
        N_i = T_i * (H_i / 14) * (W_i / 14) patches, in the encoder's token order (frame-major, row-major), and
        the rows of the result follow the items' order.
        """
        items, positions = normalize_visual_items(pixel_values, patch_positions)
        if not items:
            raise ValueError("get_image_features needs at least one visual item")
        # Packed call: items of different sizes in one sequence (cu_seqlens), no padding. The truncated tower's
        # last_hidden_state is hidden_states[vision_feature_layer] of the full encoder.
        encoded = self.vision_tower(items, patch_positions=positions, return_dict=True, **kwargs)
        features = encoded.last_hidden_state.squeeze(0)  # (sum N_i, D_vision)
        return self.multi_modal_projector(features)  # (sum N_i, H)

    def _touch_vision_modules(self, reference: torch.Tensor) -> torch.Tensor:
        """A zero that depends on every tower and projector parameter, from a one-patch dummy image.

        Under ZeRO-3 every rank must gather the same parameters in the same order, and DDP expects a gradient for
        each trainable one; a rank whose batch has no visual item would otherwise skip the tower and hang the others
        (spec section 9.5).
        """
        vision = self.vision_tower.config
        dummy = torch.zeros(
            vision.num_channels, vision.patch_size, vision.patch_size, device=reference.device, dtype=reference.dtype
        )  # one [C, 14, 14] image = one patch
        return self.get_image_features([dummy]).sum() * 0.0

    def get_placeholder_mask(
        self, input_ids: torch.LongTensor | None, inputs_embeds: torch.Tensor, num_features: int
    ) -> torch.Tensor:
        """Bool mask [B, L, 1] of the placeholder tokens; ``ValueError`` if their count is not ``num_features``."""
        if input_ids is None:
            placeholder = self.get_input_embeddings()(
                torch.tensor(self.config.image_token_id, dtype=torch.long, device=inputs_embeds.device)
            )
            mask = (inputs_embeds == placeholder).all(-1)
        else:
            mask = input_ids == self.config.image_token_id
        num_placeholders = int(mask.sum())
        if num_placeholders != num_features:
            raise ValueError(
                f"the input has {num_placeholders} image placeholder tokens (image_token_id="
                f"{self.config.image_token_id}) but the visual items give {num_features} features; the processor "
                "must expand each item to exactly one placeholder per patch"
            )
        return mask.unsqueeze(-1).to(inputs_embeds.device)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: VisualItems = None,
        patch_positions: ItemPositions = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> LlavaOVModelOutputWithPast:
        r"""
        input_ids: [B, L] with one ``image_token_id`` per visual patch (all items of the batch, in order).
        pixel_values / patch_positions: the batch's flat list of visual items (sample 0's first) and their
            positions; see :func:`normalize_visual_items`.
        position_ids: [B, L], passed through unchanged (packed rows restart at 0 per sample; with
            ``attention_mask=None`` and no cache (``use_cache=False``) transformers then builds a block-diagonal
            causal mask, or makes varlen flash-attention calls).
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)  # (B, L, H)

        items, positions = normalize_visual_items(pixel_values, patch_positions)
        # A decode step reads earlier tokens from the cache; its (new) ids are not checked against features.
        is_decode_step = past_key_values is not None and past_key_values.get_seq_length() > 0
        image_features = None
        if items:
            image_features = self.get_image_features(items, positions)
            image_features = image_features.to(inputs_embeds.device, inputs_embeds.dtype)
            mask = self.get_placeholder_mask(input_ids, inputs_embeds, image_features.shape[0])
            inputs_embeds = inputs_embeds.masked_scatter(mask, image_features)
        elif not is_decode_step:
            self.get_placeholder_mask(input_ids, inputs_embeds, 0)  # placeholders without items are an error
            if self.training or is_deepspeed_zero3_enabled():
                inputs_embeds = inputs_embeds + self._touch_vision_modules(inputs_embeds)

        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return LlavaOVModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_hidden_states=image_features,
        )


class LlavaOVForConditionalGeneration(LlavaOVPreTrainedModel, GenerationMixin):
    """LLaVA-OV with the LM head: ``forward`` returns logits (and the causal-LM loss with ``labels``)."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: LlavaOVConfig) -> None:
        super().__init__(config)
        self.model = LlavaOVModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    @property
    def vision_tower(self) -> OneVisionEncoderModel:
        return self.model.vision_tower

    @property
    def multi_modal_projector(self) -> LlavaOVMultiModalProjector:
        return self.model.multi_modal_projector

    @property
    def language_model(self) -> nn.Module:
        return self.model.language_model

    def get_image_features(
        self, pixel_values: VisualItems, patch_positions: ItemPositions = None, **kwargs
    ) -> torch.Tensor:
        """Projected visual tokens [sum N_i, H] of the items; see :meth:`LlavaOVModel.get_image_features`."""
        return self.model.get_image_features(pixel_values, patch_positions, **kwargs)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: VisualItems = None,
        patch_positions: ItemPositions = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> LlavaOVCausalLMOutputWithPast:
        r"""
        input_ids / attention_mask / position_ids: [B, L] (see :meth:`LlavaOVModel.forward`).
        pixel_values: list of visual items ([C, H, W] or [C, T, H, W]); patch_positions: aligned list of [N_i, 3]
            (t, h, w) or None entries.
        labels: [B, L], -100 = ignored; the loss shifts them by one (standard causal LM). ``num_items_in_batch``
            in ``kwargs`` (from the Trainer) makes it a token mean over the whole accumulated batch.
        logits_to_keep: keep the logits of the last k positions only (0 = all), or of the given indices.

        Returns logits [B, L, vocab] (or [B, k, vocab]), loss, cache and ``image_hidden_states`` [sum N_i, H].
        Packed rows need no cache: transformers detects them (and builds the block-diagonal mask) only when no cache
        is passed, so a loss step (``labels`` given, or training) defaults to ``use_cache=False``.
        """
        if use_cache is None and (labels is not None or self.training):
            use_cache = False  # a loss step never reuses keys/values
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            patch_positions=patch_positions,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)  # (B, L or k, vocab)
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return LlavaOVCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_hidden_states=outputs.image_hidden_states,
        )

    def _expand_inputs_for_generation(
        self,
        expand_size: int = 1,
        is_encoder_decoder: bool = False,
        input_ids: torch.LongTensor | None = None,
        **model_kwargs,
    ) -> tuple[torch.LongTensor | None, dict]:
        """Beam search / ``num_return_sequences``: rows are repeated ``expand_size`` times, and so are their items
        (transformers only expands tensors, and the items are a flat list across rows)."""
        if expand_size > 1 and model_kwargs.get("pixel_values") is not None:
            items, positions = normalize_visual_items(
                model_kwargs["pixel_values"], model_kwargs.get("patch_positions")
            )
            if input_ids is None:
                raise ValueError("num_beams / num_return_sequences > 1 with visual items needs input_ids")
            groups = group_items_by_sample(
                input_ids == self.config.image_token_id, items, patch_size=self.config.vision_config.patch_size
            )
            order = [index for group in groups for _ in range(expand_size) for index in group]
            model_kwargs["pixel_values"] = [items[i] for i in order]
            model_kwargs["patch_positions"] = [positions[i] for i in order]
        return super()._expand_inputs_for_generation(expand_size, is_encoder_decoder, input_ids, **model_kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        past_key_values: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        pixel_values: VisualItems = None,
        patch_positions: ItemPositions = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ) -> dict:
        """As for any causal LM, plus the visual items on the prefill step only (decode steps read the cache)."""
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            past_key_values=past_key_values,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        # Without a cache every step re-reads the whole prompt, placeholders included, so it needs the items too.
        if is_first_iteration or not kwargs.get("use_cache", True):
            model_inputs["pixel_values"] = pixel_values
            model_inputs["patch_positions"] = patch_positions
        return model_inputs


__all__ = [
    "LlavaOVCausalLMOutputWithPast",
    "LlavaOVForConditionalGeneration",
    "LlavaOVModel",
    "LlavaOVModelOutputWithPast",
    "LlavaOVPreTrainedModel",
    "group_items_by_sample",
    "normalize_visual_items",
]
