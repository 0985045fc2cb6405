"""OneVisionEncoderImageProcessor (spec section 7): upstream pixels, native and pad-to-square modes, loading, errors.

The reference pipeline below is written from the spec, independently of the processor: PIL bicubic on uint8, long
side truncated, crop offsets floored, float32 `x / 255`, CLIP mean/std.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoImageProcessor
from transformers.utils import is_torchvision_available

from llava.model.onevision_encoder.checkpoint import UPSTREAM_PREPROCESSOR
from llava.model.onevision_encoder.configuration_onevision_encoder import OneVisionEncoderConfig
from llava.model.onevision_encoder.image_processing_onevision_encoder import (
    OneVisionEncoderImageProcessor,
    compute_native_size,
    register_image_processor,
)

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)

# The `-large` preprocessor_config.json as published (a CLIPImageProcessor), as the checkpoint builder writes it.
UPSTREAM_PREPROCESSOR_CONFIG = UPSTREAM_PREPROCESSOR


def random_image(height: int, width: int, *, seed: int = 0, mode: str = "RGB") -> PIL.Image.Image:
    """Smooth gradient plus noise, so bicubic overshoot and clipping are exercised."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 255, height)[:, None, None]
    cols = np.linspace(255, 0, width)[None, :, None]
    pixels = 0.5 * rows + 0.5 * cols + rng.normal(0, 40, (height, width, 4))
    image = PIL.Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGBA")
    return image if mode == "RGBA" else image.convert(mode)


def normalize_reference(image: PIL.Image.Image) -> np.ndarray:
    """RGB uint8 PIL -> float32 [3, H, W], `x / 255` in float32 then CLIP mean/std."""
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    return ((pixels - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)


def upstream_reference(image: PIL.Image.Image, side: int = 448) -> np.ndarray:
    """The `-large` pipeline of spec section 7, step by step."""
    image = image.convert("RGB")
    width, height = image.size
    if width <= height:
        new_width, new_height = side, int(height * side / width)
    else:
        new_width, new_height = int(width * side / height), side
    image = image.resize((new_width, new_height), resample=PIL.Image.Resampling.BICUBIC)
    left, top = (new_width - side) // 2, (new_height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return normalize_reference(image)


def pad_to_square_reference(image: PIL.Image.Image, side: int = 504) -> np.ndarray:
    width, height = image.size
    square = PIL.Image.new("RGB", (max(width, height),) * 2)
    square.paste(image, ((max(width, height) - width) // 2, (max(width, height) - height) // 2))
    return normalize_reference(square.resize((side, side), resample=PIL.Image.Resampling.BICUBIC))


@pytest.fixture()
def upstream_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "onevision-encoder-large"
    folder.mkdir()
    (folder / "preprocessor_config.json").write_text(json.dumps(UPSTREAM_PREPROCESSOR_CONFIG, indent=2))
    return folder


@pytest.fixture()
def processor() -> OneVisionEncoderImageProcessor:
    return OneVisionEncoderImageProcessor()


# --- "clip" mode: the upstream pixels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width"),
    [(480, 640), (640, 480), (448, 448), (300, 301), (100, 90), (37, 1000), (1001, 999)],
    ids=["landscape", "portrait", "exact", "odd", "upscale", "thin", "near-square"],
)
def test_clip_mode_matches_manual_pipeline(processor, height, width):
    image = random_image(height, width, seed=height + width)
    out = processor(image, return_tensors="pt")
    assert out.pixel_values.shape == (1, 3, 448, 448)
    assert out.pixel_values.dtype == torch.float32
    np.testing.assert_allclose(out.pixel_values[0].numpy(), upstream_reference(image), rtol=0, atol=1e-6)


def test_clip_mode_long_side_is_truncated(processor):
    # 640x480: 640 * 448 / 480 = 597.33 -> 597 (truncation, section 7), visible without the crop.
    out = processor(random_image(480, 640), do_center_crop=False)
    assert out.pixel_values[0].shape == (3, 448, 597)
    out = processor(random_image(700, 300), do_center_crop=False)
    assert out.pixel_values[0].shape == (3, 1045, 448)  # 700 * 448 / 300 = 1045.33


def test_batch_of_mixed_sizes_is_stacked(processor):
    images = [random_image(480, 640, seed=1), random_image(900, 500, seed=2), random_image(448, 448, seed=3)]
    out = processor(images, return_tensors="pt")
    assert out.pixel_values.shape == (3, 3, 448, 448)
    for row, image in zip(out.pixel_values, images, strict=True):
        np.testing.assert_allclose(row.numpy(), upstream_reference(image), rtol=0, atol=1e-6)
    as_numpy = processor(images, return_tensors="np").pixel_values
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32
    np.testing.assert_array_equal(as_numpy, out.pixel_values.numpy())


def test_grayscale_is_replicated_to_rgb(processor):
    gray = random_image(300, 400, mode="L")
    pixels = processor(gray, return_tensors="np").pixel_values[0]
    np.testing.assert_allclose(pixels, upstream_reference(gray.convert("RGB")), rtol=0, atol=1e-6)
    # All three channels carry the same uint8 value, so (x * std + mean) agrees across channels.
    unnormalized = pixels * CLIP_STD[:, None, None] + CLIP_MEAN[:, None, None]
    np.testing.assert_allclose(unnormalized[0], unnormalized[1], atol=1e-6)
    np.testing.assert_allclose(unnormalized[0], unnormalized[2], atol=1e-6)


def test_rgba_is_composited_on_white(processor):
    opaque = random_image(300, 400, mode="RGBA")
    opaque.putalpha(255)
    np.testing.assert_array_equal(
        processor(opaque, return_tensors="np").pixel_values,
        processor(opaque.convert("RGB"), return_tensors="np").pixel_values,
    )
    transparent = PIL.Image.new("RGBA", (400, 300), (10, 200, 30, 0))
    pixels = processor(transparent, return_tensors="np").pixel_values[0]
    white = (1.0 - CLIP_MEAN) / CLIP_STD
    np.testing.assert_allclose(pixels, np.broadcast_to(white[:, None, None], pixels.shape), atol=1e-6)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P"])
def test_equals_transformers_clip_processor_on_pil(upstream_folder, processor, mode):
    """transformers' own CLIPImageProcessorPil runs without torchvision and is the upstream reference."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    reference = CLIPImageProcessorPil.from_pretrained(upstream_folder)
    images = [random_image(333, 517, seed=5, mode=mode), random_image(800, 460, seed=6, mode=mode)]
    expected = reference(images, return_tensors="pt").pixel_values
    torch.testing.assert_close(processor(images, return_tensors="pt").pixel_values, expected, rtol=0, atol=0)


def test_array_and_tensor_inputs_equal_pil(processor):
    image = random_image(240, 320, seed=7)
    hwc = np.array(image)
    expected = processor(image, return_tensors="np").pixel_values
    for candidate in (
        hwc,
        hwc.transpose(2, 0, 1).copy(),
        torch.from_numpy(hwc),
        torch.from_numpy(hwc).permute(2, 0, 1),
    ):
        np.testing.assert_array_equal(processor(candidate, return_tensors="np").pixel_values, expected)
    batch = processor(np.stack([hwc, hwc]), return_tensors="np").pixel_values  # 4-D [B, H, W, C] is a batch
    np.testing.assert_array_equal(batch, np.concatenate([expected, expected]))
    gray = np.asarray(random_image(240, 320, seed=8, mode="L"))
    np.testing.assert_array_equal(
        processor(gray, return_tensors="np").pixel_values,
        processor(PIL.Image.fromarray(gray), return_tensors="np").pixel_values,
    )


def test_return_tensors_none_gives_list_of_arrays(processor):
    out = processor([random_image(100, 200), random_image(300, 200)])
    assert isinstance(out.pixel_values, list) and len(out.pixel_values) == 2
    assert all(isinstance(array, np.ndarray) and array.shape == (3, 448, 448) for array in out.pixel_values)


# --- loading -----------------------------------------------------------------------------------------------------


def test_auto_image_processor_loads_upstream_folder_without_torchvision(upstream_folder, processor):
    image = random_image(480, 640, seed=9)
    loaded = AutoImageProcessor.from_pretrained(upstream_folder)
    if not is_torchvision_available():
        # transformers 5.23 falls back from CLIPImageProcessor (torchvision) to CLIPImageProcessorPil.
        assert type(loaded).__name__ == "CLIPImageProcessorPil"
        assert loaded.backend == "pil"
    torch.testing.assert_close(
        loaded(image, return_tensors="pt").pixel_values,
        processor(image, return_tensors="pt").pixel_values,
        rtol=0,
        atol=0,
    )
    explicit = AutoImageProcessor.from_pretrained(upstream_folder, backend="pil")
    assert explicit.backend == "pil"


def test_our_class_reads_upstream_folder(upstream_folder):
    loaded = OneVisionEncoderImageProcessor.from_pretrained(upstream_folder)
    assert loaded.resize_mode == "clip"
    assert loaded.size.shortest_edge == 448 and (loaded.crop_size.height, loaded.crop_size.width) == (448, 448)
    assert int(loaded.resample) == 3
    image = random_image(500, 375, seed=10)
    np.testing.assert_allclose(
        loaded(image, return_tensors="np").pixel_values[0], upstream_reference(image), rtol=0, atol=1e-6
    )


def test_save_load_round_trip(tmp_path):
    original = OneVisionEncoderImageProcessor(resize_mode="native", min_pixels=28 * 28, max_pixels=64 * 14 * 14)
    original.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["image_processor_type"] == "OneVisionEncoderImageProcessor"
    assert saved["resize_mode"] == "native" and saved["max_pixels"] == 64 * 14 * 14

    reloaded = OneVisionEncoderImageProcessor.from_pretrained(tmp_path)
    assert reloaded.to_dict() == original.to_dict()
    image = random_image(210, 350, seed=11)
    first, second = original(image, return_tensors="pt"), reloaded(image, return_tensors="pt")
    torch.testing.assert_close(first.pixel_values[0], second.pixel_values[0], rtol=0, atol=0)
    torch.testing.assert_close(first.image_grid_hw, second.image_grid_hw)


def test_auto_image_processor_loads_our_saved_folder(tmp_path):
    register_image_processor()
    register_image_processor()  # idempotent
    OneVisionEncoderConfig().save_pretrained(tmp_path)
    OneVisionEncoderImageProcessor(resize_mode="pad_to_square", size={"height": 504, "width": 504}).save_pretrained(
        tmp_path
    )
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, OneVisionEncoderImageProcessor)
    assert loaded.resize_mode == "pad_to_square" and loaded.backend == "pil"
    assert loaded(random_image(100, 150), return_tensors="pt").pixel_values.shape == (1, 3, 504, 504)


def test_auto_image_processor_uses_model_type_when_type_is_missing(tmp_path):
    """No `image_processor_type`: AutoImageProcessor falls back to config.json's model_type, then our mapping."""
    from llava.model.registration import register_auto_classes

    register_auto_classes()  # AutoConfig must know `onevision_encoder`
    register_image_processor()
    OneVisionEncoderConfig().save_pretrained(tmp_path)
    untyped = {key: value for key, value in UPSTREAM_PREPROCESSOR_CONFIG.items() if key != "image_processor_type"}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(untyped))
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, OneVisionEncoderImageProcessor)
    image = random_image(480, 640, seed=12)
    np.testing.assert_allclose(
        loaded(image, return_tensors="np").pixel_values[0], upstream_reference(image), rtol=0, atol=1e-6
    )


# --- native mode -------------------------------------------------------------------------------------------------


def test_native_mode_sizes_are_patch_multiples_within_budget():
    max_pixels, min_pixels = 256 * 14 * 14, 16 * 14 * 14
    processor = OneVisionEncoderImageProcessor(resize_mode="native", min_pixels=min_pixels, max_pixels=max_pixels)
    images = [random_image(480, 640), random_image(1200, 300), random_image(30, 40), random_image(224, 224)]
    out = processor(images, return_tensors="pt")
    assert isinstance(out.pixel_values, list) and len(out.pixel_values) == 4
    assert out.image_grid_hw.dtype == torch.int64 and out.image_grid_hw.shape == (4, 2)
    for pixels, grid, image in zip(out.pixel_values, out.image_grid_hw.tolist(), images, strict=True):
        channels, height, width = pixels.shape
        assert channels == 3 and pixels.dtype == torch.float32
        assert height % 14 == 0 and width % 14 == 0
        assert grid == [height // 14, width // 14]
        assert min_pixels <= height * width <= max_pixels
        # Aspect ratio kept up to the rounding of each side to the 14-pixel grid.
        assert abs(math.log((width / height) / (image.width / image.height))) < 14 / min(height, width) + 1e-9
    # 224x224 already fits: no resize, so the pixels are the plain normalisation.
    np.testing.assert_allclose(out.pixel_values[3].numpy(), normalize_reference(images[3]), rtol=0, atol=1e-6)


def test_native_mode_matches_manual_resize():
    image = random_image(1000, 750, seed=13)
    out = OneVisionEncoderImageProcessor(resize_mode="native", max_pixels=1024 * 14 * 14)(image, return_tensors="np")
    height, width = out.pixel_values[0].shape[1:]
    expected = normalize_reference(image.resize((width, height), resample=PIL.Image.Resampling.BICUBIC))
    np.testing.assert_allclose(out.pixel_values[0], expected, rtol=0, atol=1e-6)


def test_compute_native_size_properties():
    rng = np.random.default_rng(0)
    for _ in range(500):
        height, width = (int(side) for side in rng.integers(1, 4000, size=2))
        min_pixels = int(rng.integers(1, 64)) * 196
        max_pixels = min_pixels + int(rng.integers(0, 4096)) * 196
        new_height, new_width = compute_native_size(
            height, width, patch_size=14, min_pixels=min_pixels, max_pixels=max_pixels
        )
        assert new_height % 14 == 0 and new_width % 14 == 0 and min(new_height, new_width) >= 14
        assert new_height * new_width <= max_pixels
        if max(height, width) / min(height, width) < 10:
            # No side clamped to one patch: the shape is kept to a patch, and a budget that is not too narrow
            # also gives the lower bound.
            if max_pixels >= 2 * min_pixels:
                assert new_height * new_width >= min_pixels
            assert abs(math.log((new_width / new_height) / (width / height))) < 2 * 14 / min(new_height, new_width)
    assert compute_native_size(448, 448, patch_size=14, min_pixels=196, max_pixels=448 * 448) == (448, 448)
    assert compute_native_size(1, 10000, patch_size=14, min_pixels=196, max_pixels=100 * 196) == (14, 1400)


def test_native_size_differs_from_smart_resize():
    """Why the native size is ours (see compute_native_size): transformers' smart_resize breaks max_pixels on a
    narrow budget and refuses extreme shapes; ours keeps the bound and handles them."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    budget = 50 * 196
    theirs = smart_resize(100, 100, factor=14, min_pixels=budget, max_pixels=budget)
    assert theirs[0] * theirs[1] > budget  # (112, 112)
    ours = compute_native_size(100, 100, patch_size=14, min_pixels=budget, max_pixels=budget)
    assert ours == (98, 98) and ours[0] * ours[1] <= budget
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(14, 14 * 300, factor=14, min_pixels=196, max_pixels=400 * 196)
    assert compute_native_size(14, 14 * 300, patch_size=14, min_pixels=196, max_pixels=400 * 196) == (14, 4200)


def test_native_mode_without_resize_requires_patch_multiples():
    processor = OneVisionEncoderImageProcessor(resize_mode="native", do_resize=False)
    assert processor(random_image(56, 84), return_tensors="pt").image_grid_hw.tolist() == [[4, 6]]
    with pytest.raises(ValueError, match=r"images\[0\]: 50x84 is not a multiple of patch_size=14"):
        processor(random_image(50, 84))


def test_mode_can_be_switched_per_call(processor):
    out = processor(random_image(480, 640), resize_mode="native", return_tensors="pt")
    assert out.pixel_values[0].shape == (3, 476, 644)  # 480/14 = 34.3 -> 34, 640/14 = 45.7 -> 46; no crop
    assert processor.resize_mode == "clip"


# --- pad-to-square mode (LLaVA) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(300, 500), (500, 300), (301, 500), (504, 504)])
def test_pad_to_square_matches_manual_pipeline(height, width):
    processor = OneVisionEncoderImageProcessor(resize_mode="pad_to_square", size={"height": 504, "width": 504})
    image = random_image(height, width, seed=14)
    out = processor(image, return_tensors="pt")
    assert out.pixel_values.shape == (1, 3, 504, 504)
    np.testing.assert_allclose(out.pixel_values[0].numpy(), pad_to_square_reference(image), rtol=0, atol=1e-6)


def test_pad_to_square_pads_with_black():
    processor = OneVisionEncoderImageProcessor(resize_mode="pad_to_square", size=504)  # int size -> 504x504
    image = PIL.Image.new("RGB", (504, 252), (255, 255, 255))  # white band in the middle half
    pixels = processor(image, return_tensors="np").pixel_values[0]
    black, white = -CLIP_MEAN / CLIP_STD, (1 - CLIP_MEAN) / CLIP_STD
    np.testing.assert_allclose(pixels[:, :100], np.broadcast_to(black[:, None, None], (3, 100, 504)), atol=1e-6)
    np.testing.assert_allclose(pixels[:, -100:], np.broadcast_to(black[:, None, None], (3, 100, 504)), atol=1e-6)
    np.testing.assert_allclose(pixels[:, 200:300], np.broadcast_to(white[:, None, None], (3, 100, 504)), atol=1e-6)


# --- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((32, 32, 3), dtype=np.float32), r"images\[0\]: expected dtype uint8"),
        ([PIL.Image.new("RGB", (8, 8)), np.zeros((8, 8, 3), dtype=np.int64)], r"images\[1\]: expected dtype uint8"),
        (np.zeros((32, 32, 5), dtype=np.uint8), r"images\[0\]: cannot find a channel axis"),
        (np.zeros((2, 2, 32, 32, 3), dtype=np.uint8), r"images\[0\]: expected a 2-D"),
        (np.zeros((0, 32, 3), dtype=np.uint8), r"images\[0\]: image has zero size"),
        (PIL.Image.new("RGB", (0, 16)), r"images\[0\]: image has zero size"),
        (np.zeros((0, 8, 8, 3), dtype=np.uint8), r"images: got an empty batch"),
        ([], r"images: got an empty list"),
        ("cat.png", r"images\[0\]: expected a PIL.Image.Image"),
    ],
)
def test_bad_images_raise(processor, images, match):
    with pytest.raises(ValueError, match=match):
        processor(images, return_tensors="pt")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resize_mode": "crop"}, "resize_mode"),
        ({"resize_mode": "native", "max_pixels": 100}, "max_pixels"),
        ({"resize_mode": "native", "min_pixels": 10_000, "max_pixels": 5_000}, "min_pixels"),
        ({"patch_size": 0}, "patch_size"),
        ({"image_std": [0.5, 0.0, 0.5]}, "image_std"),
        ({"image_mean": [0.5, 0.5]}, "image_mean"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OneVisionEncoderImageProcessor(**kwargs)


def test_bad_call_arguments_raise(processor):
    image = random_image(64, 64)
    with pytest.raises(ValueError, match="resize_mode"):
        processor(image, resize_mode="crop")
    with pytest.raises(ValueError, match="max_pixel"):
        processor(image, max_pixel=1000)  # misspelt
    with pytest.raises(ValueError, match="do_convert_rgb is False"):
        processor(random_image(64, 64, mode="L"), do_convert_rgb=False)
    with pytest.raises(ValueError, match="data_format"):
        processor(image, data_format="channels_last")
    with pytest.raises(ValueError, match=r"pixel_values: images have different sizes"):
        processor([random_image(64, 64), random_image(64, 96)], do_center_crop=False, return_tensors="pt")
