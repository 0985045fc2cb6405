"""Chat about a video or an image in the browser (gradio): upload a file, ask questions, read streamed answers;
beside the chat, the patches the model sees (cv_reader's pipeline figure) and the token count.

    python -m llava.serve.web [--model-path DIR] [--host 127.0.0.1] [--port 7860] [--max-file-size 100mb]

Binds 127.0.0.1 unless told otherwise: the page runs a model on uploaded files, which is not something to expose
by accident. The model answers one request at a time (a queue of concurrency 1 shared by uploads and questions,
plus the engine's lock); other browsers see their place in the queue meanwhile.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from .checkpoint import add_model_arguments, engine_from_arguments
from .media import UnsupportedMediaError
from .session import ChatEngine, ChatSession

logger = logging.getLogger("llava.serve.web")

# Uploads and questions share this queue: both run the model's processor, cv_reader or generate.
MODEL_QUEUE = "model"
EMPTY_ANSWER = "(the model produced no text)"

History = list[dict[str, str]]


class WebChat:
    """The page's event handlers over one `ChatEngine`; each browser tab has its own `ChatSession` (gr.State)."""

    def __init__(self, engine: ChatEngine, *, figure_dir: Path) -> None:
        self.engine = engine
        self.figure_dir = figure_dir

    def session_of(self, session: ChatSession | None) -> ChatSession:
        return session if session is not None else ChatSession(self.engine, figure_dir=self.figure_dir)

    def upload(self, path: str | None, session: ChatSession | None) -> tuple[Any, ...]:
        """A new file: a new conversation. Returns (session, chat, figure, tokens, status)."""
        session = self.session_of(session)
        if path is None:  # the file was cleared
            session.unload()
            return session, [], None, "", "Upload a video or an image, or ask without one."
        try:
            media = session.load(path)
        except (FileNotFoundError, UnsupportedMediaError) as error:
            return session, [], None, "", f"**Error:** {error}"
        tokens = f"{media.kind}: {media.num_visual_tokens} visual tokens"
        return session, [], str(media.figure) if media.figure else None, tokens, f"Loaded {Path(path).name}."

    def ask(self, question: str, history: History | None, session: ChatSession | None) -> Iterator[tuple[Any, ...]]:
        """Streams the answer into the chat. Yields (session, chat, question box, tokens, status)."""
        session = self.session_of(session)
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
        except ValueError as error:  # the processor rejects reserved tokens or stray <image>/<video> markers
            history = history[:-2]
            yield session, history, question, gr.skip(), f"**Error:** {error}"
            return
        history[-1] = {"role": "assistant", "content": answer if answer.strip() else EMPTY_ANSWER}
        count = session.last_count.describe() if session.last_count else ""
        yield session, history, "", count, ""

    def reset(self, session: ChatSession | None) -> tuple[Any, ...]:
        """Forgets the turns, keeps the file. Returns (session, chat, status)."""
        session = self.session_of(session)
        session.reset()
        return session, [], "Conversation reset."


def build_app(engine: ChatEngine, *, figure_dir: Path) -> gr.Blocks:
    """The page; the patch figures are written to `figure_dir`. Serve it with `launch(app, figure_dir=...)`."""
    chat = WebChat(engine, figure_dir=figure_dir)
    with gr.Blocks(title="LLaVA-OV video chat", analytics_enabled=False) as app:
        state = gr.State(None)
        gr.Markdown("## Chat about a video or an image\nUpload a file, then ask about it. Answers stream in.")
        with gr.Row():
            with gr.Column(scale=3):
                upload = gr.File(label="Video or image", type="filepath", elem_id="media-upload")
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
        upload.change(chat.upload, [upload, state], [state, chatbot, figure, tokens, status], **queue)
        for trigger in (question.submit, send.click):
            trigger(chat.ask, [question, chatbot, state], [state, chatbot, question, tokens, status], **queue)
        clear.click(chat.reset, [state], [state, chatbot, status], **queue)
    return app


def launch(
    app: gr.Blocks,
    *,
    figure_dir: Path,
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
        allowed_paths=[str(figure_dir)],
        ssr_mode=False,  # server-side rendering needs Node; the page works without it
        prevent_thread_lock=not block,
        quiet=not block,
        footer_links=[],
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llava.serve.web", description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 exposes the page to the network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--max-file-size", default="100mb", help="largest upload, e.g. 100mb or 2gb")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; serves until interrupted."""
    args = parse_args(argv)
    engine = engine_from_arguments(args)
    figure_dir = Path(tempfile.mkdtemp(prefix="llava_web_"))
    app = build_app(engine, figure_dir=figure_dir)
    launch(app, figure_dir=figure_dir, host=args.host, port=args.port, max_file_size=args.max_file_size)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own start-up requests, one line each
    sys.exit(main())
