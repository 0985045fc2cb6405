"""Fixtures of the data-pipeline tests: a locally built tokenizer and small-geometry processors."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerBase

from llava.model.llava_ov.processing_llava_ov import LlavaOVProcessor
from llava.model.onevision_encoder.image_processing_onevision_encoder import OneVisionEncoderImageProcessor

from .helpers import build_test_tokenizer


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerBase:
    return build_test_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture()
def small_processor(tokenizer: PreTrainedTokenizerBase) -> LlavaOVProcessor:
    """Images squashed to 56x56 (16 tokens), videos of 4 frames on a 4x4 grid (64 tokens): fast tests."""
    return LlavaOVProcessor(
        OneVisionEncoderImageProcessor(),
        tokenizer,
        image_aspect_ratio="square",
        image_size=56,
        num_video_frames=4,
        video_mode="uniform",
        video_square_size=64,
        video_patch_size=16,
    )


@pytest.fixture(autouse=True)
def scan_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The start-up scan caches into a per-test folder (never the user's ~/.cache)."""
    folder = tmp_path / "scan_cache"
    monkeypatch.setenv("LLAVA_DATA_CACHE", str(folder))
    return folder
