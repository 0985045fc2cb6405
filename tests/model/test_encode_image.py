"""`python -m llava.model.onevision_encoder.encode_image` runs end to end on a tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from llava.model.onevision_encoder.checkpoint import build_random_checkpoint
from llava.model.onevision_encoder.encode_image import main as encode_main

IMAGE = str(Path(__file__).resolve().parents[2] / "playground" / "images" / "shapes.png")  # 640 x 448


def test_encode_image_clip_and_native_modes(tmp_path):
    folder = build_random_checkpoint(tmp_path / "ck")
    image = IMAGE
    assert encode_main(["--model_path", str(folder), "--images", image]) == [(image, (1024, 128))]
    packed = encode_main(["--model_path", str(folder), "--images", image, image, "--resize_mode", "native"])
    assert [shape for _, shape in packed] == [(1472, 128), (1472, 128)]  # 46 x 32 patches, aspect kept


def test_encode_image_errors_name_the_file(tmp_path):
    folder = build_random_checkpoint(tmp_path / "ck")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        encode_main(["--model_path", str(folder), "--images", str(tmp_path / "bad.png")])
    with pytest.raises(FileNotFoundError, match="no config.json"):
        encode_main(["--model_path", str(tmp_path), "--images", IMAGE])
