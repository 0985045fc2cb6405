"""A tiny LLaVA-OV checkpoint and a small playground data set, built once per session through the real code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from llava.playground.tiny_checkpoint import build_tiny_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny_llava") / "ckpt")


def playground_module():
    """`playground/make_playground.py` (a script, not a package module) loaded by path."""
    spec = importlib.util.spec_from_file_location("make_playground", REPO_ROOT / "playground" / "make_playground.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def playground_small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("playground")
    sizes = ["--train-videos", "6", "--eval-videos", "2", "--train-images", "6", "--eval-images", "2"]
    return playground_module().main(["--out", str(out), *sizes])
