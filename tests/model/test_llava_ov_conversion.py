"""LLaVA-OV checkpoints: assembly from an OV-Encoder folder + a Qwen3 folder (+ a stage-1 projector), upstream-layout
conversion with identical logits, projector files, the tiny builder, complete atomic folders from the command line
(each opens with the processor's and the model's `from_pretrained`, and in the chat demo), and pickle weights read
only with the explicit opt-in. Everything is built locally (no hub)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer, Qwen3ForCausalLM

from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor, OneVisionEncoderModel
from llava.model.llava_ov import conversion
from llava.model.llava_ov.conversion import (
    assemble_from_pretrained,
    convert_upstream_state_dict,
    load_projector_state_dict,
    load_upstream_checkpoint,
    read_state_dict,
    save_projector,
)
from llava.model.onevision_encoder.checkpoint import build_random_checkpoint
from llava.model.onevision_encoder.presets import onevision_encoder_tiny
from llava.model.safe_weights import PickleWeightsError
from llava.playground.tiny_checkpoint import SPECIAL_TOKENS, build_tiny_tokenizer, tiny_text_config

HIDDEN = 64


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A full OV-Encoder folder (2 layers, with head), a sharded Qwen3 folder with the tiny tokenizer, an upstream
    stage-1 ``mm_projector.bin``."""
    root = tmp_path_factory.mktemp("llava_ov_parts")
    build_random_checkpoint(root / "vision", config=onevision_encoder_tiny(image_size=28), seed=3)
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(4)
    # Sharded like the real Qwen3 folders: model.safetensors.index.json + several files.
    Qwen3ForCausalLM(tiny_text_config(832)).save_pretrained(root / "text", max_shard_size="100KB")
    tokenizer.save_pretrained(root / "text")
    torch.manual_seed(5)
    projector = {
        "model.mm_projector.0.weight": torch.randn(HIDDEN, 128) * 0.05,
        "model.mm_projector.0.bias": torch.randn(HIDDEN) * 0.05,
        "model.mm_projector.2.weight": torch.randn(HIDDEN, HIDDEN) * 0.05,
        "model.mm_projector.2.bias": torch.randn(HIDDEN) * 0.05,
    }
    torch.save(projector, root / "mm_projector.bin")
    return {"vision": root / "vision", "text": root / "text", "projector": root / "mm_projector.bin"}


@pytest.fixture(scope="module")
def assembled(parts: dict[str, Path]) -> LlavaOVForConditionalGeneration:
    return assemble_from_pretrained(
        parts["vision"], parts["text"], projector_path=parts["projector"], allow_pickle=True
    )


def _visual_items() -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    torch.manual_seed(6)
    video_positions = torch.stack(
        [torch.arange(16) // 4 * 9, torch.arange(16) % 4 // 2, torch.arange(16) % 2], dim=1
    )  # 4 mosaics of 2x2 patches at t = 0, 9, 18, 27
    return [torch.randn(3, 28, 42), torch.randn(3, 4, 28, 28)], [None, video_positions]


def _prompt(model: LlavaOVForConditionalGeneration) -> torch.Tensor:
    pad = model.config.image_token_id
    text = torch.arange(10, 30)
    return torch.cat([text[:5], torch.full((6,), pad), text[5:12], torch.full((16,), pad), text[12:]])[None]


def test_assembly_equals_its_parts(parts: dict[str, Path], assembled: LlavaOVForConditionalGeneration) -> None:
    assert len(list(parts["text"].glob("model-*.safetensors"))) > 1
    tokenizer = AutoTokenizer.from_pretrained(parts["text"])
    assert assembled.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    items, positions = _visual_items()
    encoder = OneVisionEncoderModel.from_pretrained(parts["vision"]).eval()  # full depth, with head
    projector = torch.load(parts["projector"], weights_only=True)
    linear, gelu = torch.nn.functional.linear, torch.nn.functional.gelu
    with torch.no_grad():
        # hidden_states[-2] of the full encoder (layer 1 of 2, before layernorm_post), then upstream's projector.
        features = encoder(items, patch_positions=positions, output_hidden_states=True).hidden_states[-2][0]
        expected = linear(features, projector["model.mm_projector.0.weight"], projector["model.mm_projector.0.bias"])
        expected = linear(
            gelu(expected), projector["model.mm_projector.2.weight"], projector["model.mm_projector.2.bias"]
        )
        torch.testing.assert_close(assembled.get_image_features(items, positions), expected, rtol=1e-5, atol=1e-6)

        language_model = Qwen3ForCausalLM.from_pretrained(parts["text"]).eval()
        text = torch.arange(10, 40)[None]
        torch.testing.assert_close(
            assembled(input_ids=text).logits, language_model(input_ids=text).logits, rtol=0, atol=0
        )


def test_assembly_without_projector_initialises_it(parts: dict[str, Path]) -> None:
    model = assemble_from_pretrained(parts["vision"], parts["text"])
    weight = model.multi_modal_projector.linear_1.weight
    assert 0.01 < float(weight.detach().std()) < 0.03 and not model.multi_modal_projector.linear_1.bias.any()


def _upstream_state(reference: LlavaOVForConditionalGeneration, vision_folder: Path) -> dict[str, torch.Tensor]:
    """The reference model's weights in the upstream layout, with the full tower (layer 2, post-norm, head)."""
    full_encoder = OneVisionEncoderModel.from_pretrained(vision_folder)
    state = {f"model.vision_tower.vision_tower.{k}": v for k, v in full_encoder.state_dict().items()}
    projector = reference.multi_modal_projector
    state.update(
        {
            "model.mm_projector.0.weight": projector.linear_1.weight,
            "model.mm_projector.0.bias": projector.linear_1.bias,
            "model.mm_projector.2.weight": projector.linear_2.weight,
            "model.mm_projector.2.bias": projector.linear_2.bias,
        }
    )
    state.update({f"model.{k}": v for k, v in reference.language_model.state_dict().items()})
    state["lm_head.weight"] = reference.lm_head.weight
    return {k: v.detach().clone().contiguous() for k, v in state.items()}  # clone: tied tensors share storage


def _write_upstream_folder(
    folder: Path, reference: LlavaOVForConditionalGeneration, parts: dict[str, Path], *, drop: tuple[str, ...] = ()
) -> None:
    """An upstream-trained layout (spec 2.1): model_type qwen3, mm_* fields, LlavaQwen3 key names, tokenizer."""
    folder.mkdir()
    state = {k: v for k, v in _upstream_state(reference, parts["vision"]).items() if k not in drop}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    config = reference.config.text_config.to_dict()
    config.update(
        {
            "architectures": ["LlavaQwen3ForCausalLM"],
            "model_type": "qwen3",
            "mm_vision_tower": "lmms-lab/onevision-encoder-large",
            "mm_projector_type": "mlp2x_gelu",
            "mm_hidden_size": 128,
            "mm_vision_select_layer": -2,
            "mm_vision_select_feature": "patch",
            "mm_patch_merge_type": "flat",
            "image_aspect_ratio": "anyres",
            "image_grid_pinpoints": [[574, 1120], [1120, 1120]],
            "tokenizer_padding_side": "right",
            "tokenizer_model_max_length": 321120,
            "use_mm_proj": True,
            "mm_tunable_parts": "mm_vision_tower,mm_mlp_adapter,mm_language_model",
            "mm_use_im_start_end": False,
        }
    )
    (folder / "config.json").write_text(json.dumps(config))
    AutoTokenizer.from_pretrained(parts["text"]).save_pretrained(folder)


def test_upstream_checkpoint_converts_with_identical_logits(parts, assembled, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    _write_upstream_folder(upstream, assembled, parts)
    converted = load_upstream_checkpoint(upstream)  # encoder configuration read off the weights
    vision = converted.config.vision_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads, vision.use_head) == (
        128,
        2,
        2,
        True,
    )
    assert converted.config.image_token_id == assembled.config.image_token_id
    assert (
        converted.config.vision_feature_layer == -2
        and converted.lm_head.weight is converted.get_input_embeddings().weight
    )
    items, positions = _visual_items()
    inputs = {"input_ids": _prompt(assembled), "pixel_values": items, "patch_positions": positions}
    with torch.no_grad():
        torch.testing.assert_close(converted(**inputs).logits, assembled(**inputs).logits, rtol=0, atol=0)

    # The command line writes a folder our Auto classes load, with the same logits.
    conversion.main(["upstream", str(upstream), str(tmp_path / "ours")])
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, assembled(**inputs).logits, rtol=0, atol=0)


@pytest.mark.parametrize("kept", ["lm_head.weight", "model.embed_tokens.weight"])
def test_upstream_tied_checkpoint_with_one_embedding_copy(parts, assembled, tmp_path: Path, kept: str) -> None:
    """safetensors stores a tied matrix once; either name must load into both embed_tokens and lm_head."""
    dropped = ({"lm_head.weight", "model.embed_tokens.weight"} - {kept}).pop()
    _write_upstream_folder(tmp_path / "upstream", assembled, parts, drop=(dropped,))
    converted = load_upstream_checkpoint(tmp_path / "upstream")
    assert converted.lm_head.weight is converted.get_input_embeddings().weight
    torch.testing.assert_close(converted.lm_head.weight, assembled.lm_head.weight, rtol=0, atol=0)


def test_upstream_key_map_rejects_unknown_keys() -> None:
    state = {"model.vision_resampler.weight": torch.zeros(1), "model.layers.0.mlp.up_proj.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="model.vision_resampler.weight"):
        convert_upstream_state_dict(state, num_vision_layers=23)
    dropped = {
        "model.vision_tower.vision_tower.encoder.layers.23.fc1.weight": torch.zeros(1),
        "model.vision_tower.vision_tower.head.probe": torch.zeros(1),
        "model.vision_tower.vision_tower.layernorm_post.weight": torch.zeros(1),
        "model.vision_tower.vision_tower.encoder.layers.22.fc1.weight": torch.zeros(1),
    }
    assert list(convert_upstream_state_dict(dropped, num_vision_layers=23)) == [
        "model.vision_tower.encoder.layers.22.fc1.weight"
    ]


def test_projector_files_round_trip(parts, assembled, tmp_path: Path) -> None:
    upstream = load_projector_state_dict(parts["projector"], allow_pickle=True)
    assert sorted(upstream) == ["linear_1.bias", "linear_1.weight", "linear_2.bias", "linear_2.weight"]
    path = save_projector(assembled, tmp_path)
    ours = load_projector_state_dict(tmp_path)  # a folder holding our file
    assert path.name == "multi_modal_projector.safetensors"
    for key, tensor in upstream.items():
        torch.testing.assert_close(ours[key], tensor, rtol=0, atol=0)
    save_file({"something.else": torch.zeros(2)}, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="not a mlp2x_gelu projector"):
        load_projector_state_dict(tmp_path / "bad.safetensors")


def test_tiny_checkpoint_folder_loads_offline(tmp_path: Path) -> None:
    from llava.playground import tiny_checkpoint as tiny

    folder = tiny.main([str(tmp_path / "tiny"), "--image-size", "112"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for token in (*SPECIAL_TOKENS, "<think>", "</think>"):
        assert len(tokenizer(token).input_ids) == 1, token
    text = "Which way does the object move? What colour is the moving one? Does anything move? yes no"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    assert len(tokenizer(text).input_ids) < 30  # the corpus words are merged, not spelled out byte by byte
    model = AutoModelForImageTextToText.from_pretrained(folder)
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.text_config.vocab_size >= len(tokenizer) and model.config.text_config.vocab_size % 64 == 0
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id
    processor = AutoImageProcessor.from_pretrained(folder)
    assert processor.resize_mode == "pad_to_square" and processor.size["height"] == 112


def _opens_as_a_checkpoint(folder: Path, reference: LlavaOVForConditionalGeneration) -> None:
    """What the demos, the evaluator and training do with a folder: the processor and the model from it, a prompt
    with an image through both, the reference's logits."""
    processor = LlavaOVProcessor.from_pretrained(folder)
    model = LlavaOVForConditionalGeneration.from_pretrained(folder).eval()
    assert processor.image_token_id == model.config.image_token_id
    image = torch.randint(0, 256, (30, 44, 3), dtype=torch.uint8).numpy()
    conversation = [{"from": "human", "value": "<image>\nWhat is it?"}]
    batch = processor(conversations=conversation, images=[image], add_generation_prompt=True)
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "pixel_values", "patch_positions")}
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, reference(**inputs).logits, rtol=0, atol=0)
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]
    assert leftovers == []  # the temporary folder was renamed into place


def test_command_line_folders_are_complete_checkpoints(parts, assembled, tmp_path: Path) -> None:
    out = tmp_path / "assembled"
    with pytest.raises(PickleWeightsError, match="mm_projector.bin: pickle weights .* allow_pickle"):
        conversion.main(["assemble", str(out), "--vision", str(parts["vision"]), "--text", str(parts["text"]),
                         "--projector", str(parts["projector"])])  # fmt: skip
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written
    conversion.main(["assemble", str(out), "--vision", str(parts["vision"]), "--text", str(parts["text"]),
                     "--projector", str(parts["projector"]), "--allow-pickle"])  # fmt: skip
    _opens_as_a_checkpoint(out, assembled)

    upstream = tmp_path / "upstream"
    _write_upstream_folder(upstream, assembled, parts)
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "stale.txt").write_text("an older conversion")  # replaced as a whole
    conversion.main(["upstream", str(upstream), str(tmp_path / "ours")])
    assert not (tmp_path / "ours" / "stale.txt").exists()
    _opens_as_a_checkpoint(tmp_path / "ours", assembled)
    processor = LlavaOVProcessor.from_pretrained(tmp_path / "ours")
    assert processor.image_aspect_ratio == "anyres"  # the upstream config's geometry
    assert processor.image_grid_pinpoints == [[574, 1120], [1120, 1120]]


def test_pickle_weights_need_the_opt_in(assembled, tmp_path: Path) -> None:
    """A `pytorch_model.bin` folder is refused by every reader unless allow_pickle is given."""
    folder = tmp_path / "pickled"
    assembled.save_pretrained(folder)
    state = read_state_dict(folder)
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(PickleWeightsError, match="pytorch_model.bin: pickle weights are not loaded by default"):
        LlavaOVForConditionalGeneration.from_pretrained(folder)
    with pytest.raises(PickleWeightsError, match="allow_pickle=True"):
        AutoModelForImageTextToText.from_pretrained(folder)
    with pytest.raises(PickleWeightsError):
        read_state_dict(folder)
    loaded = LlavaOVForConditionalGeneration.from_pretrained(folder, allow_pickle=True)
    for name, tensor in assembled.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)
    assert set(read_state_dict(folder, allow_pickle=True)) == set(state)
