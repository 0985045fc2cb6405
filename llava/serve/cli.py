"""Chat about a video or an image in the terminal; answers are streamed token by token.

    python -m llava.serve.cli [--model-path DIR] [--video FILE | --image FILE] [--max-new-tokens 64]

Without --model-path the embedded playground checkpoint (checkpoints/llava_ov_tiny_sft) is used, built first when
missing. Type a question, or one of the commands in `HELP`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import select
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from .checkpoint import add_model_arguments, engine_or_report
from .media import MediaError, add_media_arguments
from .session import ChatSession

logger = logging.getLogger("llava.serve.cli")

PROMPT = "user> "
ANSWER_PREFIX = "assistant> "
HELP = """commands:
  /video PATH   chat about another video (starts a new conversation)
  /image PATH   chat about another image (starts a new conversation)
  /reset        forget the conversation, keep the file
  /help         this list
  /quit         leave (Ctrl-D too)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llava.serve.cli", description=__doc__.split("\n\n")[0])
    add_model_arguments(parser)
    add_media_arguments(parser)
    media = parser.add_mutually_exclusive_group()
    media.add_argument("--video", default=None, help="video file to chat about")
    media.add_argument("--image", default=None, help="image file to chat about")
    return parser.parse_args(argv)


def read_terminal_line(prompt: str, *, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin) -> str:
    """`input(prompt)` that wakes up twice a second while it waits. A signal (Ctrl-C, SIGTERM) may be delivered to
    any thread, e.g. one of torch's or FFmpeg's; a main thread blocked in read() would then never run the handler.
    Raises EOFError at the end of input."""
    out.write(prompt)
    out.flush()
    while not select.select([stdin], [], [], 0.5)[0]:
        pass  # back in Python between waits: pending signal handlers run here
    line = stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a closed terminal): leave like Ctrl-C at the prompt, so the session's files go too."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


class Terminal:
    """The read-answer loop over a `ChatSession`; the user's screen is `out` (stdout), diagnostics go to logging."""

    def __init__(self, session: ChatSession, *, out: TextIO = sys.stdout) -> None:
        self.session = session
        self.out = out

    def say(self, text: str, *, end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def load(self, path: str) -> None:
        """Loads a file, telling the user what the model will see or why it cannot (one line; the file loaded
        before stays loaded)."""
        try:
            media = self.session.load(path)
        except MediaError as error:
            self.say(f"error: {error}")
            return
        except Exception as error:  # noqa: BLE001 - an interactive session reports and goes on
            logger.debug("loading %s failed", path, exc_info=True)
            self.say(f"error: {path}: cannot be read ({type(error).__name__}: {error})".splitlines()[0])
            return
        figure = f"; selected patches drawn in {media.figure}" if media.kind == "video" and media.figure else ""
        self.say(f"loaded {media.kind} {media.path} ({media.num_visual_tokens} visual tokens{figure})")

    def handle(self, line: str) -> bool:
        """Runs one input line; False when the user leaves."""
        command, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        if command in ("/quit", "/exit"):
            return False
        if command in ("/video", "/image"):
            if len(argument) > 1 and argument[0] == argument[-1] and argument[0] in "'\"":
                argument = argument[1:-1]  # a path pasted with quotes around it (spaces in it)
            if argument:
                self.load(str(Path(argument).expanduser()))
            else:
                self.say(f"usage: {command} PATH")
        elif command == "/reset":
            self.session.reset()
            media = self.session.media
            self.say("conversation reset" + (f" (still about {media.path})" if media else ""))
        elif command == "/help":
            self.say(HELP)
        elif command.startswith("/"):
            self.say(f"unknown command {command}; /help lists them")
        elif line.strip():
            self.answer(line)
        return True

    def answer(self, question: str) -> None:
        """Streams the answer as it is generated, then the token count."""
        self.say(ANSWER_PREFIX, end="")
        try:
            for piece in self.session.ask(question):
                self.say(piece, end="")
        except Terminated:
            raise
        except KeyboardInterrupt:  # Ctrl-C stops this answer (kept as far as it got), not the session
            self.say("\n[answer interrupted]")
            return
        except ValueError as error:  # the processor rejects reserved tokens or stray <image>/<video> markers
            self.say(f"\nerror: {error}")
            return
        except Exception as error:  # noqa: BLE001 - a failed generation ends this answer, not the session
            logger.debug("generation failed", exc_info=True)
            self.say("\n" + f"error: the answer failed ({type(error).__name__}: {error})".splitlines()[0])
            return
        count = self.session.last_count
        self.say(f"\n[{count.describe()}]" if count else "")

    def run(self, read_line: Callable[[str], str] | None = None) -> None:
        """Reads lines (`read_line`, default `read_terminal_line` on `out`) until /quit or end of input."""
        if read_line is None:
            read_line = functools.partial(read_terminal_line, out=self.out)
        self.say("Type a question about the file, or /help.")
        while True:
            try:
                line = read_line(PROMPT)
            except EOFError:
                self.say("")
                return
            if not self.handle(line):
                return


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    engine = engine_or_report(args)
    if engine is None:
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    with ChatSession(engine, max_image_pixels=args.max_image_pixels) as session:
        terminal = Terminal(session)
        for path in (args.video, args.image):
            if path:
                terminal.load(path)
        try:
            terminal.run()
        except Terminated as terminated:
            return 128 + terminated.args[0]  # the shell's convention for "ended by signal N"
        except KeyboardInterrupt:
            terminal.say("")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
