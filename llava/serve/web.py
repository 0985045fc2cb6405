"""Chat about a video or an image in the browser (gradio): upload a file, ask questions, read streamed answers;
beside the chat, the patches the model sees (cv_reader's pipeline figure) and the token count.

    python -m llava.serve.web [--model-path DIR] [--host 127.0.0.1] [--port 7860] [--max-file-size 100mb]
                              [--max-image-pixels 64000000]

Binds 127.0.0.1 unless told otherwise: the page runs a model on uploaded files, which is not something to expose
by accident. The model answers one request at a time (a queue of concurrency 1 shared by uploads and questions,
plus the engine's lock); other browsers see their place in the queue meanwhile.

Files: the server owns one temporary folder (`server_folder`) holding gradio's uploads and cache (GRADIO_TEMP_DIR) and
one folder per browser session for the patch figures. A session's folder and uploads are removed when the session
ends (the tab closes); the whole folder when the server stops.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from .checkpoint import add_model_arguments, engine_or_report
from .media import DEFAULT_MAX_IMAGE_PIXELS, MediaError, add_media_arguments
from .session import ChatEngine, ChatSession

logger = logging.getLogger("llava.serve.web")

# Uploads and questions share this queue: both run the model's processor, cv_reader or generate.
MODEL_QUEUE = "model"
EMPTY_ANSWER = "(the model produced no text)"
# Under the server folder: gradio's uploads and cache, and the sessions' figure folders.
UPLOADS = "uploads"
SESSIONS = "sessions"
# Gradio's cache sweep: every half hour, files older than a day (a session that never closed its tab).
CACHE_SWEEP = (1800, 86400)

History = list[dict[str, str]]


class WebSession(ChatSession):
    """A browser tab's `ChatSession`, which also owns the files the tab uploaded (removed with it)."""

    def __init__(self, engine: ChatEngine, *, upload_root: Path, **kwargs: Any) -> None:
        super().__init__(engine, **kwargs)
        self.upload_root = upload_root
        self.uploads: list[Path] = []

    def track_upload(self, path: Path) -> None:
        if path.resolve().is_relative_to(self.upload_root.resolve()):  # never a file the server did not receive
            self.uploads.append(path)

    def close(self) -> None:
        super().close()
        for path in self.uploads:
            with contextlib.suppress(OSError):  # gone already, or not ours to remove: nothing to report to anyone
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # gradio's per-upload folder, when now empty
                path.parent.rmdir()
        self.uploads = []


def close_session(session: ChatSession | None) -> None:
    """gr.State's delete callback: the tab closed (or the server stops), its files go."""
    if session is not None:
        session.close()


def _one_line(prefix: str, error: BaseException) -> str:
    return f"{prefix} ({type(error).__name__}: {error})".splitlines()[0]


class WebChat:
    """The page's event handlers over one `ChatEngine`; each browser tab has its own `WebSession` (gr.State), also
    kept here by gradio session so that closing the tab (`end_session`, the page's unload event) removes its files
    at once rather than when gradio expires the state an hour later."""

    def __init__(
        self, engine: ChatEngine, *, work_dir: Path, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    ) -> None:
        self.engine = engine
        self.work_dir = work_dir
        self.max_image_pixels = max_image_pixels
        self.sessions: dict[str, ChatSession] = {}
        self._lock = threading.Lock()

    def session_of(self, session: ChatSession | None, request: gr.Request | None = None) -> ChatSession:
        if session is None:
            session = WebSession(
                self.engine, upload_root=self.work_dir / UPLOADS, figure_root=self.work_dir / SESSIONS,
                max_image_pixels=self.max_image_pixels,
            )  # fmt: skip
        key = getattr(request, "session_hash", None)
        if key is not None:
            with self._lock:
                self.sessions[key] = session
        return session

    def end_session(self, request: gr.Request) -> None:
        """The tab was closed: its session's figures and uploads go now."""
        with self._lock:
            session = self.sessions.pop(request.session_hash, None)
        close_session(session)

    def close_all(self) -> None:
        """The server stops: every session's files go."""
        with self._lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.close()

    def upload(self, path: str | None, session: ChatSession | None, request: gr.Request) -> tuple[Any, ...]:
        """A new file: a new conversation. Returns (session, chat, figure, tokens, status). A file that cannot be
        used leaves the previous one loaded (chat, figure and tokens unchanged) and says why in the status line."""
        session = self.session_of(session, request)
        if path is None:
            return session, gr.skip(), gr.skip(), gr.skip(), "Upload a video or an image."
        if isinstance(session, WebSession):
            session.track_upload(Path(path))
        try:
            media = session.load(path)
        except Exception as error:  # noqa: BLE001 - the page reports every failure and keeps serving
            if isinstance(error, MediaError):
                message = str(error)
            else:
                logger.exception("loading %s failed", path)
                message = _one_line(f"{Path(path).name}: cannot be read", error)
            current = session.media
            still = f" Still chatting about {current.path.name}." if current is not None else ""
            return session, gr.skip(), gr.skip(), gr.skip(), f"**Error:** {message}.{still}"
        tokens = f"{media.kind}: {media.num_visual_tokens} visual tokens"
        return session, [], str(media.figure) if media.figure else None, tokens, f"Loaded {Path(path).name}."

    def ask(
        self, question: str, history: History | None, session: ChatSession | None, request: gr.Request
    ) -> Iterator[tuple[Any, ...]]:
        """Streams the answer into the chat. Yields (session, chat, question box, tokens, status)."""
        session = self.session_of(session, request)
        history = list(history or [])
        if not question.strip():
            yield session, history, question, gr.skip(), "Type a question first."
            return
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        yield session, history, "", gr.skip(), "Answering..."
        answer = ""
        try:
            for piece in session.ask(question):
                answer += piece
                history[-1] = {"role": "assistant", "content": answer}
                yield session, history, "", gr.skip(), "Answering..."
        except Exception as error:  # noqa: BLE001 - the processor rejects reserved tokens / stray markers, or
            # generation failed: the page says so and keeps serving
            if not isinstance(error, ValueError):
                logger.exception("answering failed")
            message = str(error) if isinstance(error, ValueError) else _one_line("the answer failed", error)
            history = history[:-2]
            yield session, history, question, gr.skip(), f"**Error:** {message}"
            return
        history[-1] = {"role": "assistant", "content": answer if answer.strip() else EMPTY_ANSWER}
        count = session.last_count.describe() if session.last_count else ""
        yield session, history, "", count, ""

    def remove_file(self, session: ChatSession | None, request: gr.Request) -> tuple[Any, ...]:
        """Drops the file: questions are text only. Returns (session, chat, figure, tokens, status)."""
        session = self.session_of(session, request)
        session.unload()
        return session, [], None, "", "No file: questions are text only. Upload a video or an image to chat about it."

    def reset(self, session: ChatSession | None, request: gr.Request) -> tuple[Any, ...]:
        """Forgets the turns, keeps the file. Returns (session, chat, status)."""
        session = self.session_of(session, request)
        session.reset()
        return session, [], "Conversation reset."


@contextlib.contextmanager
def server_folder() -> Iterator[Path]:
    """The server's temporary folder; gradio keeps its uploads and cache in it (GRADIO_TEMP_DIR, read by gradio
    while it serves, restored afterwards). Removed with everything in it when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="llava_web_"))
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder / UPLOADS)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous
        shutil.rmtree(folder, ignore_errors=True)


def build_app(chat: WebChat) -> gr.Blocks:
    """The page over `chat`'s handlers (its sessions write their figures under `chat.work_dir`, a
    `server_folder()` set up before this call so that gradio's uploads go there too). Serve it with
    `launch(app, work_dir=chat.work_dir)`; `chat.close_all()` when the server stops."""
    with gr.Blocks(title="LLaVA-OV video chat", analytics_enabled=False, delete_cache=CACHE_SWEEP) as app:
        state = gr.State(None, delete_callback=close_session)
        gr.Markdown("## Chat about a video or an image\nUpload a file, then ask about it. Answers stream in.")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row(elem_id="media-upload"):
                    # A button, not a file box: a new upload is always one click away and a refused file leaves
                    # the loaded one in place (a file box would have to be cleared first, dropping it).
                    upload = gr.UploadButton(
                        "Upload a video or an image", type="filepath", elem_id="upload-button", variant="primary"
                    )
                    remove = gr.Button("Remove the file", elem_id="remove-file")
                status = gr.Markdown("Upload a video or an image.", elem_id="status")
                chatbot = gr.Chatbot(label="Chat", elem_id="chat", height=360)
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask about the file and press Enter", show_label=False, elem_id="question", scale=4
                    )
                    send = gr.Button("Send", variant="primary", elem_id="send", scale=1)
                clear = gr.Button("Reset conversation", elem_id="reset")
            with gr.Column(scale=2):
                figure = gr.Image(
                    label="Patches the model sees", type="filepath", interactive=False, elem_id="patches"
                )
                tokens = gr.Markdown(elem_id="tokens")
        queue = {"concurrency_limit": 1, "concurrency_id": MODEL_QUEUE}
        upload.upload(chat.upload, [upload, state], [state, chatbot, figure, tokens, status], **queue)
        remove.click(chat.remove_file, [state], [state, chatbot, figure, tokens, status], **queue)
        for trigger in (question.submit, send.click):
            trigger(chat.ask, [question, chatbot, state], [state, chatbot, question, tokens, status], **queue)
        clear.click(chat.reset, [state], [state, chatbot, status], **queue)
        app.unload(chat.end_session)
    return app


def launch(
    app: gr.Blocks,
    *,
    work_dir: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_file_size: str = "100mb",
    block: bool = True,
) -> None:
    """Serves the page on host:port (in the background when not `block`); uploads above `max_file_size` are
    refused by gradio before they reach the handlers."""
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host,
        server_port=port,
        max_file_size=max_file_size,
        allowed_paths=[str(work_dir)],
        ssr_mode=False,  # server-side rendering needs Node; the page works without it
        prevent_thread_lock=not block,
        quiet=not block,
        footer_links=[],
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llava.serve.web", description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    add_media_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 exposes the page to the network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--max-file-size", default="100mb", help="largest upload, e.g. 100mb or 2gb")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; serves until interrupted (Ctrl-C or SIGTERM), then removes the server's folder."""
    args = parse_args(argv)
    engine = engine_or_report(args)
    if engine is None:
        return 2
    # SIGTERM (a service manager, `kill`) stops the server like Ctrl-C, so the temporary folder goes too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with server_folder() as work_dir:
        chat = WebChat(engine, work_dir=work_dir, max_image_pixels=args.max_image_pixels)
        app = build_app(chat)
        try:
            launch(app, work_dir=work_dir, host=args.host, port=args.port, max_file_size=args.max_file_size)
        except KeyboardInterrupt:
            pass
        finally:
            app.close()
            chat.close_all()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up requests, one line each
    sys.exit(main())
