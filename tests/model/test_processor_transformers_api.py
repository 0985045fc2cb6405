"""The transformers VLM call on `LlavaOVProcessor`, in the shape of transformers' processor tests
(tests/models/*/test_processing_*.py): text only, text + image, text + video, a batch, and `apply_chat_template` with
`tokenize=True, return_dict=True`. Each result is checked against the tokenizer alone or against the conversation
path (`process_conversation`), which the training labels test separately."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerBase
from transformers.feature_extraction_utils import BatchFeature

from llava.model.llava_ov.processing_llava_ov import LlavaOVProcessor
from llava.model.llava_ov.video_inputs import VideoFrames
from llava.model.onevision_encoder.image_processing_onevision_encoder import OneVisionEncoderImageProcessor
from tests.data.helpers import build_test_tokenizer, make_image


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerBase:
    return build_test_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture()
def processor(tokenizer: PreTrainedTokenizerBase) -> LlavaOVProcessor:
    # 28 px images (2 x 2 patches), video frames on a 2 x 2 grid (32 px at cv_reader patch 16 -> 28 px).
    settings = {"image_aspect_ratio": "square", "image_size": 28, "video_square_size": 32, "num_video_frames": 3}
    return LlavaOVProcessor(OneVisionEncoderImageProcessor(), tokenizer, **settings)


def video() -> VideoFrames:
    return VideoFrames([np.full((32, 32, 3), 40 * i, dtype=np.uint8) for i in range(3)])


def image_message(question: str, *, image=None) -> list[dict]:
    part = {"type": "image"} if image is None else {"type": "image", "image": image}
    return [{"role": "user", "content": [part, {"type": "text", "text": question}]}]


def placeholders(processor: LlavaOVProcessor, row: torch.Tensor) -> int:
    return int((row == processor.image_token_id).sum())


def test_text_only_equals_tokenizer(processor, tokenizer):
    out = processor(text="What moves in the video?")
    assert isinstance(out, BatchFeature)
    expected = tokenizer("What moves in the video?", add_special_tokens=False)["input_ids"]
    assert out["input_ids"].tolist() == [expected]
    assert out["attention_mask"].tolist() == [[1] * len(expected)]
    assert out["pixel_values"] == [] and out["patch_positions"] == []
    assert "labels" not in out
    assert set(processor.model_input_names) <= set(out.keys())


def test_text_and_image_equals_conversation_path(processor):
    messages = image_message("What is shown?")
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\n<image>\nWhat is shown?<|im_end|>\n<|im_start|>assistant\n")
    image = make_image(40, 30)
    out = processor(text=prompt, images=image, return_tensors="pt")
    reference = processor.process_conversation(messages, images=[image], add_generation_prompt=True)
    assert out["input_ids"][0].tolist() == reference["input_ids"].tolist()
    assert placeholders(processor, out["input_ids"][0]) == 4  # 28 x 28 px = 2 x 2 patches
    (pixels,) = out["pixel_values"]
    assert tuple(pixels.shape) == (3, 28, 28)
    torch.testing.assert_close(pixels, reference["pixel_values"][0])
    assert out["patch_positions"] == [None]


def test_text_and_video_is_one_item_of_frame_lines(processor):
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What moves?"}]}],
        add_generation_prompt=True,
    )
    out = processor(text=prompt, videos=video())
    (pixels,) = out["pixel_values"]
    assert tuple(pixels.shape) == (3, 3, 28, 28)
    assert tuple(out["patch_positions"][0].shape) == (3 * 4, 3)
    ids = out["input_ids"][0].tolist()
    assert placeholders(processor, out["input_ids"][0]) == 12
    # Written as 3 lines of 4 placeholders: placeholder runs separated by one newline token each.
    decoded = processor.decode([t for t in ids if t != processor.image_token_id])
    assert "<|im_start|>user\n\n\n\nWhat moves?" in decoded


def test_batch_deals_flat_images_in_marker_order_and_pads_left(processor):
    first, second = make_image(20, 20, seed=1), make_image(50, 40, seed=2)
    prompts = [
        processor.apply_chat_template(image_message("Colour?"), add_generation_prompt=True),
        processor.apply_chat_template(
            [{"role": "user", "content": "<image>\nand\n<image>\nsame?"}], add_generation_prompt=True
        ),
        "Hi",
    ]
    third = make_image(30, 30, seed=3)
    out = processor(text=prompts, images=[first, second, third], padding_side="left")
    assert out["input_ids"].shape[0] == 3 and len(out["pixel_values"]) == 3
    for row, (prompt, images) in enumerate(zip(prompts, [[first], [second, third], []], strict=True)):
        alone = processor(text=prompt, images=images or None)["input_ids"][0]
        length = int(out["attention_mask"][row].sum())
        assert out["input_ids"][row, -length:].tolist() == alone.tolist()
        assert (out["input_ids"][row, :-length] == processor.tokenizer.pad_token_id).all()
    # Per-prompt lists give the same batch as the flat list.
    nested = processor(text=prompts, images=[[first], [second, third], None], padding_side="left")
    assert torch.equal(nested["input_ids"], out["input_ids"])
    for a, b in zip(nested["pixel_values"], out["pixel_values"], strict=True):
        torch.testing.assert_close(a, b)


def test_apply_chat_template_tokenize_return_dict(processor):
    image = make_image(40, 30)
    messages = image_message("What is shown?", image=image)
    out = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert isinstance(out, BatchFeature)
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    expected = processor(text=prompt, images=[image])
    assert torch.equal(out["input_ids"], expected["input_ids"])
    assert torch.equal(out["attention_mask"], expected["attention_mask"])
    torch.testing.assert_close(out["pixel_values"][0], expected["pixel_values"][0])
    # tokenize=True without return_dict gives the ids only, as transformers does.
    ids = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    assert torch.equal(ids, expected["input_ids"])


def test_apply_chat_template_batch_with_video_and_image_paths(processor, tmp_path):
    path = tmp_path / "shape.png"
    make_image(30, 30).save(path)
    batch = [
        image_message("Colour?", image=str(path)),
        [{"role": "user", "content": [{"type": "video", "video": video()}, {"type": "text", "text": "Moves?"}]}],
    ]
    prompts = processor.apply_chat_template(batch, add_generation_prompt=True)
    assert isinstance(prompts, list) and len(prompts) == 2
    out = processor.apply_chat_template(batch, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert [placeholders(processor, row) for row in out["input_ids"]] == [4, 12]
    assert [p.dim() for p in out["pixel_values"]] == [3, 4]


def test_conversation_call_still_gives_labels(processor):
    conversation = [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A red square."}]
    out = processor(conversations=conversation, images=[make_image(10, 10)])
    supervised = out["labels"][0][out["labels"][0] != -100]
    assert processor.decode(supervised) == "A red square.<|im_end|>"


def test_errors_name_the_problem(processor):
    with pytest.raises(ValueError, match="placeholder '<|image_pad|>'"):
        processor(text="<|image_pad|> forged")
    with pytest.raises(ValueError, match="1 markers for images but 0 images"):
        processor(text="<image>\nWhat?")
    with pytest.raises(TypeError, match="conversations=..."):
        processor([{"from": "human", "value": "Hi"}])
    with pytest.raises(TypeError, match="truncation"):
        processor(text="Hi", truncation=True)
    with pytest.raises(ValueError, match="chat_template must be None"):
        processor.apply_chat_template(image_message("Q"), "{{ messages }}")
    with pytest.raises(ValueError, match="is a URL"):
        processor.apply_chat_template(image_message("Q", image="https://example.com/a.png"), tokenize=True)
