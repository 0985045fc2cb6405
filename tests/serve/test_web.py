"""The web page in a real headless Chromium (Debian's, driven by Playwright): upload a playground video, ask, an
answer streams into the chat beside the patch figure and the token count; a screenshot is kept as an artifact; a
file that is not a video or an image, and every damaged or hostile file, gets a visible error message while the
previous video stays loaded; uploads and figures stay in the server's folder and go when the tab closes."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from llava.serve import ChatEngine

from ..polling import wait_for
from .bad_media import REFUSED
from .conftest import ARTIFACTS

gradio = pytest.importorskip("gradio", reason="the web demo needs gradio (pip install -e '.[demo]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the [dev] extra)")

from llava.serve.web import SESSIONS, UPLOADS, WebChat, build_app, launch, server_folder  # noqa: E402

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
def web_chat(tiny_checkpoint: Path) -> Iterator[WebChat]:
    """The page served in this process on 127.0.0.1 and a free port (`web_chat.url`), in its own server folder;
    sampling makes the untrained model say words. The folder is gone after the server stops."""
    torch.manual_seed(0)
    engine = ChatEngine.from_pretrained(tiny_checkpoint, max_new_tokens=8, temperature=1.0)
    with server_folder() as work_dir:
        chat = WebChat(engine, work_dir=work_dir)
        app = build_app(chat)
        port = free_port()
        launch(app, work_dir=work_dir, port=port, max_file_size="5mb", block=False)
        chat.url = f"http://127.0.0.1:{port}/"
        try:
            yield chat
        finally:
            app.close()
            chat.close_all()
    assert not work_dir.exists()


@pytest.fixture(scope="module")
def server(web_chat: WebChat) -> str:
    return web_chat.url


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


def test_remove_file(server: str, browser, playground_video: Path) -> None:
    page = open_page(browser, server)
    page.locator("#media-upload input[type=file]").set_input_files(str(playground_video))
    sync_api.expect(page.locator("#status")).to_contain_text(f"Loaded {playground_video.name}", timeout=TIMEOUT_MS)
    page.locator("#remove-file").click()
    sync_api.expect(page.locator("#status")).to_contain_text("No file", timeout=TIMEOUT_MS)
    sync_api.expect(page.locator("#patches img")).to_have_count(0)
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


def test_bad_uploads_show_errors(web_chat: WebChat, browser, playground_video: Path, bad_media: dict[str, Path],
                                 artifacts_dir: Path) -> None:  # fmt: skip
    page = open_page(browser, web_chat.url)
    upload = page.locator("#media-upload input[type=file]")
    upload.set_input_files(str(playground_video))
    sync_api.expect(page.locator("#status")).to_contain_text(f"Loaded {playground_video.name}", timeout=TIMEOUT_MS)
    for name, path in bad_media.items():
        if name == "directory":  # a browser uploads files only (the terminal test covers folders)
            continue
        upload.set_input_files(str(path))
        status = page.locator("#status")
        sync_api.expect(status).to_contain_text(path.name, timeout=TIMEOUT_MS)
        text = status.inner_text()
        if name in REFUSED or not text.startswith("Loaded"):
            assert text.startswith(f"Error: {path.name}"), text
            assert f"Still chatting about {playground_video.name}" in text, text
            sync_api.expect(page.locator("#patches img")).to_be_visible()  # the previous figure stays
            sync_api.expect(page.locator("#tokens")).to_contain_text("video: 256 visual tokens")
            screenshot = artifacts_dir / f"web_demo_bad_{path.stem}.png"
            page.screenshot(path=str(screenshot), full_page=True)
            ARTIFACTS.append(f"web demo screenshot ({name}): {screenshot}")
        else:
            upload.set_input_files(str(playground_video))
            sync_api.expect(status).to_contain_text(f"Loaded {playground_video.name}", timeout=TIMEOUT_MS)
    page.locator("#question textarea").fill("Does anything move?")
    page.locator("#question textarea").press("Enter")  # the server still answers, about the video
    sync_api.expect(page.locator("#tokens")).to_contain_text("answer", timeout=TIMEOUT_MS)
    sync_api.expect(page.get_by_text("null")).to_have_count(0)  # never a blank {"error": null}
    page.close()


def test_closing_the_tab_removes_its_files(web_chat: WebChat, browser, playground_video: Path) -> None:
    sessions, uploads = web_chat.work_dir / SESSIONS, web_chat.work_dir / UPLOADS
    before = set(sessions.iterdir()) if sessions.exists() else set()
    page = open_page(browser, web_chat.url)
    page.locator("#media-upload input[type=file]").set_input_files(str(playground_video))
    sync_api.expect(page.locator("#status")).to_contain_text(f"Loaded {playground_video.name}", timeout=TIMEOUT_MS)
    mine = set(sessions.iterdir()) - before
    assert len(mine) == 1 and any(mine.pop().glob("*.png"))  # this tab's figure folder
    assert any(path.name == playground_video.name for path in uploads.rglob("*"))  # gradio's upload, in our folder
    page.close(run_before_unload=True)
    assert wait_for(lambda: set(sessions.iterdir()) <= before), list(sessions.iterdir())
