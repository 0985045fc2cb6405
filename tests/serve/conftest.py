"""The chat demo's fixtures: a tiny untrained checkpoint (seconds to build), a playground clip, a playground image
and a file that is neither; built once per session through the real code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llava.data.synthetic import random_clip_spec, render_clip, render_shape_image, write_video
from llava.playground.tiny_checkpoint import build_tiny_checkpoint
from llava.serve import ChatEngine

from .bad_media import build_bad_media

# Lines for the terminal summary (artifact paths), collected by the tests that write artifacts.
ARTIFACTS: list[str] = []


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("serve_tiny") / "ckpt")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve_media")


@pytest.fixture(scope="session")
def playground_video(media_dir: Path) -> Path:
    """A moving-shape playground clip, H.264 160x128, 24 frames."""
    spec = random_clip_spec(np.random.default_rng(6), static_fraction=0.0)
    return write_video(media_dir / "clip.mp4", render_clip(spec))


@pytest.fixture(scope="session")
def playground_image(media_dir: Path) -> Path:
    """A playground shape image (PNG)."""
    path = media_dir / "shape.png"
    image, _ = render_shape_image("red", "circle", seed=6)
    image.save(path)
    return path


@pytest.fixture(scope="session")
def not_media(media_dir: Path) -> Path:
    """Text with a video extension: the demo must look at the content, not the name."""
    path = media_dir / "notes.mp4"
    path.write_text("shopping list: eggs, milk\n")
    return path


@pytest.fixture(scope="session")
def bad_media(media_dir: Path) -> dict[str, Path]:
    """Damaged and hostile files by name (tests/serve/bad_media.py), and "directory"."""
    return build_bad_media(media_dir / "bad")


@pytest.fixture(scope="session")
def engine(tiny_checkpoint: Path) -> ChatEngine:
    return ChatEngine.from_pretrained(tiny_checkpoint, max_new_tokens=8)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints where the demo tests left their artifacts (the web page screenshots)."""
    if ARTIFACTS:
        terminalreporter.section("chat demo artifacts")
        for line in ARTIFACTS:
            terminalreporter.write_line(line)
