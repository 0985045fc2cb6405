"""Loading the encoder never leaves a used weight random: trailing layers and the unused head are ignored, but a used
layer's weight that is missing or stored under an unknown name is an error naming the folder and the key."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from llava.model import OneVisionEncoderModel
from llava.model.onevision_encoder.presets import onevision_encoder_tiny
from llava.model.onevision_encoder.weight_check import ignored_checkpoint_keys


@pytest.fixture()
def folder(tmp_path):
    torch.manual_seed(0)
    OneVisionEncoderModel(onevision_encoder_tiny(num_hidden_layers=3, use_head=True)).save_pretrained(tmp_path)
    return tmp_path


def _rewrite(folder, edit) -> None:
    path = folder / "model.safetensors"
    weights = load_file(path)
    edit(weights)
    save_file(weights, path, metadata={"format": "pt"})


def test_truncated_load_ignores_trailing_layers_and_head(folder):
    full = OneVisionEncoderModel.from_pretrained(folder)
    short = OneVisionEncoderModel.from_pretrained(folder, num_hidden_layers=2, use_head=False)
    for name, value in short.state_dict().items():
        torch.testing.assert_close(value, full.state_dict()[name], rtol=0, atol=0)


def test_unknown_key_inside_a_used_layer_is_an_error(folder):
    def rename(weights):
        weights["encoder.layers.1.attn.qkv.weight"] = weights.pop("encoder.layers.1.self_attn.q_proj.weight")

    names = set(load_file(folder / "model.safetensors"))
    assert "encoder.layers.1.self_attn.q_proj.weight" in names, sorted(names)[:8]
    _rewrite(folder, rename)
    with pytest.raises(ValueError, match=r"encoder\.layers\.1\.attn\.qkv\.weight") as error:
        OneVisionEncoderModel.from_pretrained(folder)
    assert str(folder) in str(error.value) and "would stay random" in str(error.value)
    # The layer past num_hidden_layers may differ: it is not used.
    OneVisionEncoderModel.from_pretrained(folder, num_hidden_layers=1, use_head=False)


def test_missing_used_weight_is_an_error(folder):
    _rewrite(folder, lambda weights: weights.pop("encoder.layers.0.mlp.fc1.weight"))
    with pytest.raises(ValueError, match=r"1 encoder weights missing .*encoder\.layers\.0\.mlp\.fc1\.weight"):
        OneVisionEncoderModel.from_pretrained(folder)


def test_ignore_patterns_cover_only_unused_layers():
    import re

    pattern = re.compile("|".join(ignored_checkpoint_keys(23)))
    assert pattern.search("encoder.layers.23.mlp.fc1.weight") and pattern.search("encoder.layers.99.x")
    assert not pattern.search("encoder.layers.0.mlp.fc1.weight")
    assert not pattern.search("encoder.layers.22.mlp.fc1.weight")
    assert not pattern.search("encoder.layers.2.mlp.fc1.weight")


def test_llava_ov_missing_vision_tower_weight_is_an_error(tmp_path):
    from transformers import Qwen3Config

    from llava.model import LlavaOVConfig, LlavaOVForConditionalGeneration

    text = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, head_dim=16, tie_word_embeddings=True)  # fmt: skip
    config = LlavaOVConfig(vision_config=onevision_encoder_tiny(), text_config=text, image_token_id=5)
    LlavaOVForConditionalGeneration(config).save_pretrained(tmp_path)
    LlavaOVForConditionalGeneration.from_pretrained(tmp_path)  # complete: loads
    _rewrite(tmp_path, lambda weights: weights.pop("model.vision_tower.encoder.layers.0.mlp.fc2.weight"))
    with pytest.raises(ValueError, match=r"model\.vision_tower\.encoder\.layers\.0\.mlp\.fc2\.weight"):
        LlavaOVForConditionalGeneration.from_pretrained(tmp_path)
