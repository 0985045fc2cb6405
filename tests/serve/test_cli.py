"""The terminal chat driven as a person would, over a pseudo-terminal: a video from the command line, a question
answered (text on screen, then the token count), /reset, a file that is not a video, /image, /quit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .terminal import PtySession


def test_terminal_chat(tiny_checkpoint: Path, playground_video: Path, playground_image: Path, not_media: Path) -> None:
    command = [
        sys.executable, "-m", "llava.serve.cli", "--model-path", str(tiny_checkpoint),
        "--video", str(playground_video), "--max-new-tokens", "8", "--temperature", "1", "--seed", "0",
    ]  # fmt: skip
    terminal = PtySession(command, env={**os.environ, "HF_HUB_OFFLINE": "1", "TERM": "dumb"})
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
