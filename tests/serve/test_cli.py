"""The terminal chat driven as a person would, over a pseudo-terminal: a video from the command line, a question
answered (text on screen, then the token count), /reset, a file that is not a video, /image, /quit."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

from llava.serve import ChatEngine, ChatSession
from llava.serve.cli import Terminal

from .bad_media import REFUSED
from .terminal import PtySession


def test_terminal_chat(
    tiny_checkpoint: Path, playground_video: Path, playground_image: Path, not_media: Path, tmp_path: Path
) -> None:
    command = [
        sys.executable, "-m", "llava.serve.cli", "--model-path", str(tiny_checkpoint),
        "--video", str(playground_video), "--max-new-tokens", "8", "--temperature", "1", "--seed", "0",
    ]  # fmt: skip
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "dumb", "TMPDIR": str(scratch)}
    terminal = PtySession(command, env=env)
    try:
        terminal.expect(rf"loaded video {playground_video} \((\d+) visual tokens; selected patches drawn in \S+\.png")
        terminal.expect("user> ")

        terminal.send_line("Does anything move?")
        # Sampling from the untrained model: random words of its vocabulary, printed as they are generated.
        answer = terminal.expect(r"assistant> (.*?)\n")
        assert answer.group(1).strip(), terminal.transcript
        count = terminal.expect(r"\[prompt (\d+) tokens \((\d+) visual\), answer (\d+) tokens\]")
        first_prompt = int(count.group(1))
        assert int(count.group(3)) > 0
        terminal.expect("user> ")

        terminal.send_line("Which way does it go?")  # the second turn's prompt holds the first turn
        count = terminal.expect(r"\[prompt (\d+) tokens")
        assert int(count.group(1)) > first_prompt
        terminal.expect("user> ")

        terminal.send_line("/reset")
        terminal.expect(f"conversation reset \\(still about {playground_video}\\)")
        terminal.send_line("Does anything move?")  # a fresh conversation: the first prompt again
        count = terminal.expect(r"\[prompt (\d+) tokens")
        assert int(count.group(1)) == first_prompt

        terminal.send_line(f"/video {not_media}")
        terminal.expect(r"error: notes\.mp4 is not a video or an image")
        terminal.send_line(f"/image {playground_image}")
        terminal.expect(rf"loaded image {playground_image} \(\d+ visual tokens\)")
        terminal.send_line("What colour is the shape?")
        terminal.expect(r"\[prompt \d+ tokens")
        terminal.expect("user> ")
        terminal.send_line("/quit")
        assert terminal.close() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.close()
    assert list(scratch.iterdir()) == []  # the session's temporary folder went with it


def test_terminal_reports_bad_files_and_goes_on(
    tiny_checkpoint: Path, playground_video: Path, tmp_path: Path, bad_media: dict[str, Path]
) -> None:
    """Each damaged or hostile file is one `error:` line (or, where the reader copes, `loaded`), the previous video
    stays loaded and questions are still answered; the session's temporary folder is gone after /quit."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [
        sys.executable, "-m", "llava.serve.cli", "--model-path", str(tiny_checkpoint),
        "--video", str(bad_media["directory"]), "--max-new-tokens", "4",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "dumb", "TMPDIR": str(scratch)}
    terminal = PtySession(command, env=env)
    try:
        terminal.expect(rf"error: {bad_media['directory']} is a directory, not a file[^\n]*\n")
        terminal.expect("user> ")
        terminal.send_line(f"/video {playground_video}")
        terminal.expect(rf"loaded video {playground_video} ")
        terminal.expect("user> ")
        for name, path in bad_media.items():
            if name == "directory":
                continue
            terminal.send_line(f"/video {path}")
            outcome = terminal.expect(r"(error|loaded)[^\n]*\n")
            line = outcome.group(0)
            assert path.name in line and "Traceback" not in terminal.transcript, terminal.transcript
            if name in REFUSED:
                assert line.startswith("error: "), line
            next_line = terminal.expect(r"user> ")
            assert terminal.transcript[outcome.end() : next_line.start()].strip() == "", terminal.transcript
            if line.startswith("loaded"):
                terminal.send_line(f"/video {playground_video}")
                terminal.expect(rf"loaded video {playground_video} ")
        terminal.send_line("Does anything move?")
        terminal.expect(r"\[prompt \d+ tokens \((\d+) visual\)")
        terminal.expect("user> ")
        assert list(scratch.iterdir())  # the session's figures
        terminal.process.send_signal(signal.SIGTERM)  # e.g. the terminal window closed, or `kill`
        assert terminal.close() == 128 + signal.SIGTERM
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.close()
    assert list(scratch.iterdir()) == []  # the figures' folder went with the session


def test_ctrl_c_stops_the_answer_not_the_session(engine: ChatEngine, playground_video: Path) -> None:
    """Ctrl-C while an answer streams (a KeyboardInterrupt out of the stream) ends that answer; the turn keeps what
    was said and the next question is answered."""
    with ChatSession(engine) as session:
        session.load(playground_video)
        screen = io.StringIO()
        terminal = Terminal(session, out=screen)
        real_stream = engine.stream

        def interrupted_stream(*args, **kwargs):
            for piece in real_stream(*args, **kwargs):
                yield piece
                raise KeyboardInterrupt

        engine.stream = interrupted_stream
        try:
            terminal.handle("Does anything move?")
        finally:
            del engine.stream  # back to the class method
        assert screen.getvalue().endswith("\n[answer interrupted]\n")
        assert [turn["from"] for turn in session.turns] == ["human", "gpt"]
        terminal.handle("Which way?")
        assert "[prompt" in screen.getvalue().splitlines()[-1]
