"""The terminal chat driven as a person would, over a pseudo-terminal: a video from the command line, a question
answered as a stream, /reset, a file that is not a video, /image, /quit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .terminal import PtySession


def test_terminal_chat(tiny_checkpoint: Path, playground_video: Path, playground_image: Path, not_media: Path) -> None:
    command = [
        sys.executable, "-m", "llava.serve.cli", "--model-path", str(tiny_checkpoint),
        "--video", str(playground_video), "--max-new-tokens", "8",
    ]  # fmt: skip
    terminal = PtySession(command, env={**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "dumb"})
    try:
        terminal.expect(rf"loaded video {playground_video} \((\d+) visual tokens; selected patches drawn in \S+\.png")
        terminal.expect("user> ")

        terminal.send_line("Does anything move?")
        terminal.expect("assistant> ")
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


def test_answer_is_streamed(tiny_checkpoint: Path, playground_video: Path) -> None:
    """The answer reaches the terminal piece by piece while it is generated, not once at the end: the prefix is
    on screen before the token count, in separate writes."""
    command = [
        sys.executable, "-m", "llava.serve.cli", "--model-path", str(tiny_checkpoint),
        "--video", str(playground_video), "--max-new-tokens", "8",
    ]  # fmt: skip
    terminal = PtySession(command, env={**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "dumb"})
    try:
        terminal.expect("user> ")
        terminal.send_line("Does anything move?")
        terminal.expect(r"\[prompt \d+ tokens.*\]")
        answer = terminal.transcript.split("assistant> ", 1)[1].split("\n[prompt", 1)[0]
        chunks = [text for _, text in terminal.chunks if "user> " not in text]
        terminal.send_line("/quit")
        assert terminal.close() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.close()
    assert answer.strip(), "the untrained model's answer should still contain text"
    # More than one write after the prefix: the answer pieces came as generate produced them.
    assert len(chunks) >= 2, chunks
