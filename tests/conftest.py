"""Shared test set-up: offline hub, the `../shared` fixtures folder, deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("OV_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """`../shared/fixtures`: reference data produced by upstream. Missing is an error in CI, a skip elsewhere."""
    path = SHARED_DIR / "fixtures"
    if not path.is_dir():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"reference fixtures not found at {path} (set OV_SHARED_DIR)")
        pytest.skip(f"reference fixtures not found at {path} (set OV_SHARED_DIR)")
    return path
