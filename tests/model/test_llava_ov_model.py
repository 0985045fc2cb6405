"""LLaVA-OV model behaviour on a tiny random checkpoint (CPU): fusion, batching, packing, generation, save/load,
training coverage. Geometry: 14 px patches; an image [3, 28, 42] = 6 patches, a codec video [3, 8, 28, 28] = 32."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

from llava.model import LlavaOVConfig, LlavaOVForConditionalGeneration, LlavaOVModel
from llava.playground.tiny_checkpoint import build_tiny_checkpoint

IGNORE_INDEX = -100


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("llava_ov_tiny"), image_size=28)


@pytest.fixture(scope="module")
def tokenizer(tiny_folder: Path):
    return AutoTokenizer.from_pretrained(tiny_folder)


@pytest.fixture()
def model(tiny_folder: Path) -> LlavaOVForConditionalGeneration:
    torch.manual_seed(0)
    return LlavaOVForConditionalGeneration.from_pretrained(tiny_folder).eval()


def _video_positions(frames: int = 8, grid: int = 2) -> torch.Tensor:
    """Codec-style positions [frames * grid * grid, 3]: t on the 64-frame timeline, raster h, w per mosaic."""
    t = torch.tensor([0, 5, 11, 20, 29, 40, 52, 63])[:frames].repeat_interleave(grid * grid)
    hw = torch.cartesian_prod(torch.arange(grid), torch.arange(grid)).repeat(frames, 1)
    return torch.cat([t[:, None], hw], dim=1)


def _encode(tokenizer, segments: list[str | int]) -> list[int]:
    """Text segments and placeholder runs (an int n = n `<|image_pad|>` tokens) -> ids."""
    pad_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    ids: list[int] = []
    for segment in segments:
        ids += [pad_id] * segment if isinstance(segment, int) else tokenizer(segment).input_ids
    return ids


def _samples(tokenizer) -> list[dict]:
    """Three samples: an image, a codec video (one ViT item, 8 mosaics of 4 patches), text only."""
    torch.manual_seed(1)
    image = torch.randn(3, 28, 42)
    video = torch.randn(3, 8, 28, 28)
    video_prompt: list[str | int] = ["<|im_start|>user\n"]
    for _ in range(8):
        video_prompt += [4, "\n"]  # one line of placeholders per mosaic, as the processor writes it
    return [
        {
            "ids": _encode(tokenizer, ["<|im_start|>user\n", 6, "\nWhat colour is it?<|im_end|>\n", "red<|im_end|>"]),
            "pixel_values": [image],
            "patch_positions": [None],
        },
        {
            "ids": _encode(tokenizer, [*video_prompt, "Which way does the object move?<|im_end|>\nleft<|im_end|>"]),
            "pixel_values": [video],
            "patch_positions": [_video_positions()],
        },
        {"ids": _encode(tokenizer, ["<|im_start|>user\nDoes anything move?<|im_end|>\nno<|im_end|>"])},
    ]


def _collate(samples: list[dict], pad_id: int) -> dict:
    """Right-padded batch with labels on every real token; the visual items flattened in sample order."""
    length = max(len(s["ids"]) for s in samples)
    input_ids = torch.full((len(samples), length), pad_id)
    attention_mask = torch.zeros_like(input_ids)
    for row, sample in enumerate(samples):
        input_ids[row, : len(sample["ids"])] = torch.tensor(sample["ids"])
        attention_mask[row, : len(sample["ids"])] = 1
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    pixel_values = [item for s in samples for item in s.get("pixel_values", [])]
    patch_positions = [item for s in samples for item in s.get("patch_positions", [])]
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "pixel_values": pixel_values or None,
        "patch_positions": patch_positions or None,
    }


def test_config_and_state_dict_names(model: LlavaOVForConditionalGeneration) -> None:
    config = model.config
    assert config.model_type == "llava_ov" and config.vision_feature_layer == -2
    # -2 of a 2-layer encoder: one layer is built, no post-norm or head.
    assert config.num_vision_layers_used == 1 and len(model.vision_tower.encoder.layers) == 1
    assert not hasattr(model.vision_tower, "head")
    prefixes = {re.match(r"model\.\w+|lm_head", key).group(0) for key in model.state_dict()}
    assert prefixes == {"model.vision_tower", "model.multi_modal_projector", "model.language_model", "lm_head"}
    assert model.lm_head.weight is model.get_input_embeddings().weight  # tied as in Qwen3
    with pytest.raises(ValueError, match="vision_feature_layer"):
        LlavaOVConfig(vision_config=config.vision_config, text_config=config.text_config, vision_feature_layer=-4)


def test_mixed_batch_forward_backward_every_parameter_trains(model, tokenizer) -> None:
    batch = _collate(_samples(tokenizer), tokenizer.pad_token_id)
    model.train()
    output = model(**batch)
    assert output.logits.shape == (*batch["input_ids"].shape, model.config.text_config.vocab_size)
    assert output.image_hidden_states.shape == (6 + 32, model.config.text_config.hidden_size)
    output.loss.backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"parameters without gradient: {no_grad}"

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    torch.optim.SGD(model.parameters(), lr=1e-2).step()
    unchanged = [name for name, p in model.named_parameters() if torch.equal(before[name], p)]
    assert not unchanged, f"parameters unchanged by a training step: {unchanged}"


def test_batched_samples_equal_single_samples(model, tokenizer) -> None:
    """Batch size 3 with per-sample items and positions gives each sample's own logits."""
    samples = _samples(tokenizer)
    with torch.no_grad():
        batched = model(**_collate(samples, tokenizer.pad_token_id)).logits
        for row, sample in enumerate(samples):
            alone = model(**_collate([sample], tokenizer.pad_token_id)).logits[0]
            torch.testing.assert_close(batched[row, : len(sample["ids"])], alone, rtol=1e-4, atol=1e-5)


def test_video_positions_reach_the_encoder(model, tokenizer) -> None:
    video_sample = _samples(tokenizer)[1]
    with torch.no_grad():
        with_positions = model.get_image_features(video_sample["pixel_values"], video_sample["patch_positions"])
        shifted = [video_sample["patch_positions"][0] + torch.tensor([0, 1, 1])]
        moved = model.get_image_features(video_sample["pixel_values"], shifted)
    assert with_positions.shape == (32, model.config.text_config.hidden_size)
    assert not torch.allclose(with_positions, moved)
    # A batched tensor lists its items along dim 0, like a list of them.
    images = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model.get_image_features(images), model.get_image_features(list(images)))


def test_placeholder_feature_mismatch_raises(model, tokenizer) -> None:
    sample = _samples(tokenizer)[0]
    pad_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    one_short = list(sample["ids"])
    one_short.remove(pad_id)
    with torch.no_grad():
        with pytest.raises(ValueError, match="5 image placeholder tokens .* 6 features"):
            model(input_ids=torch.tensor([one_short]), pixel_values=sample["pixel_values"])
        with pytest.raises(ValueError, match="6 image placeholder tokens .* 0 features"):
            model(input_ids=torch.tensor([sample["ids"]]))
        with pytest.raises(ValueError, match="patch_positions has 2 entries for 1 visual items"):
            model(
                input_ids=torch.tensor([sample["ids"]]),
                pixel_values=sample["pixel_values"],
                patch_positions=[None] * 2,
            )


def test_text_only_training_keeps_the_tower_in_the_graph(model, tokenizer) -> None:
    """ZeRO-3/DDP: a text-only training batch still runs (and backpropagates zeros through) tower and projector."""
    batch = _collate([_samples(tokenizer)[2]], tokenizer.pad_token_id)
    calls = []
    model.vision_tower.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        eval_loss = model(**batch).loss
    assert not calls  # no dummy pass at inference
    model.train()
    loss = model(**batch).loss
    loss.backward()
    assert calls and torch.allclose(loss, eval_loss)
    for name, param in model.named_parameters():
        if name.startswith(("model.vision_tower.", "model.multi_modal_projector.")):
            assert param.grad is not None and not param.grad.any(), name


def test_packed_row_equals_separate_rows(model, tokenizer) -> None:
    """Two samples concatenated in one row (position_ids restart, attention_mask None) == each on its own.

    The packed forward is a loss step (labels given): that defaults to no cache, which transformers needs to detect
    the packed rows.
    """
    first, second = _samples(tokenizer)[:2]
    packed_ids = torch.tensor([first["ids"] + second["ids"]])
    position_ids = torch.cat([torch.arange(len(first["ids"])), torch.arange(len(second["ids"]))])[None]
    with torch.no_grad():
        packed = model(
            input_ids=packed_ids, position_ids=position_ids, attention_mask=None, labels=packed_ids,
            pixel_values=first["pixel_values"] + second["pixel_values"],
            patch_positions=first["patch_positions"] + second["patch_positions"],
        ).logits[0]  # fmt: skip
        separate = [
            model(
                input_ids=torch.tensor([s["ids"]]),
                pixel_values=s["pixel_values"],
                patch_positions=s["patch_positions"],
            ).logits[0]
            for s in (first, second)
        ]
    torch.testing.assert_close(packed, torch.cat(separate), rtol=1e-4, atol=1e-5)


def _left_padded(tokenizer, prompts: list[list[int]], samples: list[dict]) -> dict:
    """Generation inputs: ``prompts`` left-padded into one batch, with the visual items of ``samples`` in order."""
    length = max(map(len, prompts))
    input_ids = torch.full((len(prompts), length), tokenizer.pad_token_id)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(prompts):
        input_ids[row, length - len(ids) :] = torch.tensor(ids)
        attention_mask[row, length - len(ids) :] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pixel_values": [item for sample in samples for item in sample["pixel_values"]],
        "patch_positions": [item for sample in samples for item in sample["patch_positions"]],
    }


def test_generation_with_and_without_cache_identical(model, tokenizer) -> None:
    """Greedy, batch of 2 left-padded prompts (an image + a video / text only); the tower runs once with the cache."""
    image_sample, video_sample, text_sample = _samples(tokenizer)
    prompts = [image_sample["ids"][:-3] + video_sample["ids"][:-4], text_sample["ids"][:-3]]
    inputs = _left_padded(tokenizer, prompts, [image_sample, video_sample])
    length = inputs["input_ids"].shape[1]
    calls = []
    model.vision_tower.register_forward_hook(lambda *args: calls.append(1))
    # A random model may emit the placeholder; without a cache it would then be re-read as an image token.
    settings = {"max_new_tokens": 8, "do_sample": False, "suppress_tokens": [model.config.image_token_id]}
    cached = model.generate(**inputs, use_cache=True, **settings)
    assert len(calls) == 1
    uncached = model.generate(**inputs, use_cache=False, **settings)
    assert cached.shape[1] > length
    torch.testing.assert_close(cached, uncached, rtol=0, atol=0)


def test_beam_search_and_several_sequences_repeat_each_rows_items(model, tokenizer) -> None:
    image_sample, video_sample, text_sample = _samples(tokenizer)
    prompts = [image_sample["ids"][:-3], video_sample["ids"][:-4]]
    inputs = _left_padded(tokenizer, prompts, [image_sample, video_sample])
    settings = {"max_new_tokens": 4, "suppress_tokens": [model.config.image_token_id]}
    greedy = model.generate(**inputs, do_sample=False, **settings)
    beams = model.generate(**inputs, num_beams=3, num_return_sequences=3, do_sample=False, **settings)
    sampled = model.generate(**inputs, do_sample=True, num_return_sequences=2, **settings)
    assert beams.shape[0] == 6 and sampled.shape[0] == 4 and greedy.shape[0] == 2


def test_save_load_round_trip(model, tokenizer, tmp_path: Path) -> None:
    batch = _collate(_samples(tokenizer), tokenizer.pad_token_id)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "llava_ov"
    with torch.no_grad():
        expected = model(**batch).logits
        for auto_class in (AutoModelForImageTextToText, AutoModelForCausalLM):
            reloaded = auto_class.from_pretrained(tmp_path).eval()
            assert isinstance(reloaded, LlavaOVForConditionalGeneration)
            assert reloaded.lm_head.weight is reloaded.get_input_embeddings().weight
            torch.testing.assert_close(reloaded(**batch).logits, expected, rtol=0, atol=0)
        base = AutoModel.from_pretrained(tmp_path)  # the base model reads the same file (prefix `model.`)
        assert isinstance(base, LlavaOVModel)
        torch.testing.assert_close(
            base.multi_modal_projector.linear_1.weight, model.multi_modal_projector.linear_1.weight
        )


def test_gradient_checkpointing_matches(model, tokenizer) -> None:
    batch = _collate(_samples(tokenizer)[:2], tokenizer.pad_token_id)
    model.train()
    model(**batch).loss.backward()
    reference = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert model.language_model.gradient_checkpointing and model.vision_tower.gradient_checkpointing
    model(**batch).loss.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, reference[name], rtol=1e-4, atol=1e-6, msg=name)


def test_num_items_in_batch_gives_a_token_sum(model, tokenizer) -> None:
    batch = _collate(_samples(tokenizer)[2:], tokenizer.pad_token_id)
    with torch.no_grad():
        mean = model(**batch).loss
        summed = model(**batch, num_items_in_batch=torch.tensor(1)).loss
    targets = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    torch.testing.assert_close(summed, mean * targets)


def test_bfloat16_forward_takes_float32_pixels(tiny_folder: Path, tokenizer) -> None:
    model = LlavaOVForConditionalGeneration.from_pretrained(tiny_folder, dtype=torch.bfloat16).eval()
    batch = _collate(_samples(tokenizer), tokenizer.pad_token_id)  # pixel_values stay float32
    with torch.no_grad():
        output = model(**batch)
    assert output.logits.dtype == torch.bfloat16 and output.image_hidden_states.dtype == torch.bfloat16
    assert torch.isfinite(output.loss)
