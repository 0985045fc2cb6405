"""Shared test set-up: offline hub, the in-repository reference fixtures, deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def reference_fixtures() -> Path:
    """`tests/fixtures`: reference data produced by upstream (see its README). Shipped with the repository."""
    if not (FIXTURES_DIR / "ov_encoder_tiny").is_dir() or not (FIXTURES_DIR / "codec_demo").is_dir():
        raise FileNotFoundError(f"reference fixtures missing from {FIXTURES_DIR}: the checkout is incomplete")
    return FIXTURES_DIR


@pytest.fixture(autouse=True)
def _data_scan_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The training start-up scan caches under $LLAVA_DATA_CACHE: keep it in a temporary folder (never ~/.cache),
    also for the training subprocesses the tests start (they inherit the environment)."""
    monkeypatch.setenv("LLAVA_DATA_CACHE", str(tmp_path_factory.mktemp("data_scan_cache")))
