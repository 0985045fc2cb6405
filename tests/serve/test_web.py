"""The web page in a real headless Chromium (Debian's, driven by Playwright): upload a playground video, ask, an
answer streams into the chat beside the patch figure and the token count; a screenshot is kept as an artifact; a
file that is not a video or an image gets the error message."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from llava.serve import ChatEngine

from .conftest import ARTIFACTS

gradio = pytest.importorskip("gradio", reason="the web demo needs gradio (pip install -e '.[demo]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the [dev] extra)")

from llava.serve.web import build_app, launch  # noqa: E402  (needs gradio, checked just above)

# gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 60_000


def chromium_path() -> str | None:
    """$CHROMIUM_PATH, else Debian's chromium on PATH (installed by scripts/setup_env.sh with EXTRAS=dev)."""
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page served in this process on 127.0.0.1 and a free port; sampling makes the untrained model say words."""
    torch.manual_seed(0)
    engine = ChatEngine.from_pretrained(tiny_checkpoint, max_new_tokens=8, temperature=1.0)
    figure_dir = tmp_path_factory.mktemp("web_figures")
    app = build_app(engine, figure_dir=figure_dir)
    port = free_port()
    launch(app, figure_dir=figure_dir, port=port, max_file_size="5mb", block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium executable (apt-get install chromium, or set CHROMIUM_PATH)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def artifacts_dir(tmp_path: Path) -> Path:
    """$ARTIFACTS_DIR when set (CI keeps it), else the test's tmp folder."""
    folder = Path(os.environ.get("ARTIFACTS_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.locator("#media-upload input[type=file]").wait_for(state="attached")
    return page


def test_video_chat_in_browser(server: str, browser, playground_video: Path, artifacts_dir: Path) -> None:
    page = open_page(browser, server)
    page.locator("#media-upload input[type=file]").set_input_files(str(playground_video))
    sync_api.expect(page.locator("#status")).to_contain_text(f"Loaded {playground_video.name}", timeout=TIMEOUT_MS)
    sync_api.expect(page.locator("#patches img")).to_be_visible()
    sync_api.expect(page.locator("#tokens")).to_contain_text("video: 256 visual tokens")

    page.locator("#question textarea").fill("Does anything move?")
    page.locator("#question textarea").press("Enter")
    sync_api.expect(page.locator("#tokens")).to_contain_text("answer", timeout=TIMEOUT_MS)
    sync_api.expect(page.locator("#chat")).to_contain_text("Does anything move?")
    bot = page.locator("#chat .message.bot, #chat [data-testid=bot]").last
    sync_api.expect(bot).not_to_be_empty()
    answer = bot.inner_text().strip()
    assert answer and answer != "Does anything move?"

    screenshot = artifacts_dir / "web_demo_video_chat.png"
    page.screenshot(path=str(screenshot), full_page=True)
    ARTIFACTS.append(f"web demo screenshot: {screenshot} (answer: {answer!r})")
    page.close()


def test_non_video_upload_shows_error(server: str, browser, not_media: Path, artifacts_dir: Path) -> None:
    page = open_page(browser, server)
    page.locator("#media-upload input[type=file]").set_input_files(str(not_media))
    sync_api.expect(page.locator("#status")).to_contain_text(
        f"Error: {not_media.name} is not a video or an image", timeout=TIMEOUT_MS
    )
    sync_api.expect(page.locator("#patches img")).to_have_count(0)
    screenshot = artifacts_dir / "web_demo_not_a_video.png"
    page.screenshot(path=str(screenshot), full_page=True)
    ARTIFACTS.append(f"web demo screenshot (bad upload): {screenshot}")
    page.close()


def test_upload_size_limit(server: str, browser, tmp_path: Path) -> None:
    """The server was launched with max_file_size="5mb": a bigger upload is refused before it reaches the model."""
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 6_000_000)
    page = open_page(browser, server)
    page.locator("#media-upload input[type=file]").set_input_files(str(big))
    sync_api.expect(page.get_by_text("exceed the maximum allowed size")).to_be_visible()
    sync_api.expect(page.locator("#status")).to_contain_text("Upload a video or an image")
    page.close()
