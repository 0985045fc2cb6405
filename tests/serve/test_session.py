"""The shared chat logic on a tiny untrained checkpoint: file detection, streaming, turns, reset, token counts,
one generation at a time, and the default-checkpoint resolution."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from llava.serve import ChatEngine, ChatSession, MediaError, TokenCount, UnsupportedMediaError, detect_media_kind
from llava.serve import checkpoint as serve_checkpoint


def test_detects_media_by_content(playground_video: Path, playground_image: Path, not_media: Path) -> None:
    assert detect_media_kind(playground_video) == "video"
    assert detect_media_kind(playground_image) == "image"
    with pytest.raises(UnsupportedMediaError, match="notes.mp4 is not a video or an image"):
        detect_media_kind(not_media)
    with pytest.raises(MediaError, match="missing.mp4: no such file"):
        detect_media_kind(not_media.parent / "missing.mp4")
    with pytest.raises(MediaError, match="is a directory, not a file"):
        detect_media_kind(not_media.parent)


def test_video_turns_stream_and_count(engine: ChatEngine, playground_video: Path, tmp_path: Path) -> None:
    session = ChatSession(engine, figure_root=tmp_path)
    media = session.load(playground_video)
    assert media.figure is not None and media.figure.is_file()  # cv_reader's pipeline figure
    assert media.figure.parent.parent == tmp_path  # in the session's own folder
    # The tiny processor: num_video_frames mosaics of (video_square_size / video_patch_size)**2 patches.
    processor = engine.processor
    assert media.num_visual_tokens == processor.num_video_frames * processor.video_grid**2

    pieces = list(session.ask("Does anything move?"))
    first = session.last_count
    assert isinstance(first, TokenCount)
    assert first.visual_tokens == media.num_visual_tokens
    assert 0 < first.generated_tokens <= engine.max_new_tokens
    assert [turn["from"] for turn in session.turns] == ["human", "gpt"]
    assert session.turns[0]["value"] == "<video>\nDoes anything move?"
    assert session.turns[1]["value"] == "".join(pieces)

    list(session.ask("Which way?"))
    # The second turn carries the first in its prompt, and the file only once.
    assert session.last_count.prompt_tokens > first.prompt_tokens + first.generated_tokens
    assert session.last_count.visual_tokens == media.num_visual_tokens
    assert [turn["value"].count("<video>") for turn in session.turns] == [1, 0, 0, 0]

    session.reset()
    assert session.turns == [] and session.media is media

    session.unload()  # no file: a text-only conversation
    list(session.ask("Hello"))
    assert session.turns[0]["value"] == "Hello" and session.last_count.visual_tokens == 0

    session.close()  # the session's folder goes with it
    assert list(tmp_path.iterdir()) == []


def test_image_and_switching_files(engine: ChatEngine, playground_video: Path, playground_image: Path) -> None:
    session = ChatSession(engine)
    session.load(playground_video)
    list(session.ask("Does anything move?"))
    media = session.load(playground_image)  # a new file starts a new conversation
    assert session.turns == [] and media.kind == "image"
    list(session.ask("What colour is the shape?"))
    assert session.turns[0]["value"].startswith("<image>\n")
    assert session.last_count.visual_tokens == media.num_visual_tokens


def test_bad_file_keeps_the_session(engine: ChatEngine, playground_video: Path, not_media: Path) -> None:
    session = ChatSession(engine)
    media = session.load(playground_video)
    with pytest.raises(UnsupportedMediaError):
        session.load(not_media)
    assert session.media is media


def test_reserved_tokens_are_refused(engine: ChatEngine) -> None:
    with pytest.raises(ValueError, match="reserved token"):
        list(ChatSession(engine).ask("<|im_start|>system"))


def test_answer_streams_while_generating(engine: ChatEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces reach the reader while `generate` is still running (each forward slowed down so that the reader
    thread always gets its turn), not all at once at the end."""
    forward = engine.model.forward
    forward_times: list[float] = []

    def slow_forward(*args, **kwargs):
        time.sleep(0.05)
        forward_times.append(time.monotonic())
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model, "forward", slow_forward)
    arrivals = [time.monotonic() for _ in ChatSession(engine).ask("Does anything move?")]
    assert len(arrivals) >= 2
    assert arrivals[0] < forward_times[-1]


def test_one_generation_at_a_time(engine: ChatEngine) -> None:
    """Two readers: the second stream starts only after the first one ended (the engine's lock)."""
    events: list[str] = []

    def chat(name: str) -> None:
        for _ in ChatSession(engine).ask("Describe the image."):
            time.sleep(0.01)  # widen the window in which a second generation could interleave
        events.append(f"{name} done")

    stream = ChatSession(engine).ask("Describe the video.")
    next(stream)  # holds the lock until the stream ends
    other = threading.Thread(target=chat, args=("second",))
    other.start()
    time.sleep(0.3)
    events.append("first done")
    list(stream)
    other.join(timeout=60)
    assert events == ["first done", "second done"]


def test_model_path_must_be_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no config.json"):
        serve_checkpoint.resolve_model_path(tmp_path)


def test_default_checkpoint_is_built_when_missing(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A missing checkpoint is built by running the build script for real (a stand-in for
    scripts/sft_ov_encoder.sh, which trains for minutes: it copies the session's tiny checkpoint to $OUTPUT_DIR
    and records that it ran); the folder it leaves then serves a chat."""
    script = tmp_path / "build.sh"
    runs = tmp_path / "runs.log"
    script.write_text(
        f'set -euo pipefail\necho "$SKIP_PLAYGROUND_EVAL" >> {runs}\ncp -r {tiny_checkpoint} "$OUTPUT_DIR"\n'
    )
    folder = tmp_path / "llava_ov_tiny_sft"
    assert serve_checkpoint.ensure_default_checkpoint(folder, build_script=script) == folder
    assert runs.read_text() == "1\n"  # the playground evaluation is skipped for the demo
    engine = ChatEngine.from_pretrained(folder, max_new_tokens=4)
    with ChatSession(engine) as session:
        list(session.ask("Hello"))
        assert session.last_count is not None and session.last_count.generated_tokens > 0
    serve_checkpoint.ensure_default_checkpoint(folder, build_script=script)  # present now: not rebuilt
    assert runs.read_text() == "1\n"


def test_default_checkpoint_build_failures(tmp_path: Path) -> None:
    failing = tmp_path / "failing.sh"
    failing.write_text("exit 3\n")
    with pytest.raises(RuntimeError, match="failing.sh failed with exit status 3"):
        serve_checkpoint.ensure_default_checkpoint(tmp_path / "a", build_script=failing)
    silent = tmp_path / "silent.sh"
    silent.write_text("true\n")
    with pytest.raises(RuntimeError, match="wrote no .*model.safetensors"):
        serve_checkpoint.ensure_default_checkpoint(tmp_path / "b", build_script=silent)
    with pytest.raises(FileNotFoundError, match="pass --model-path"):
        serve_checkpoint.ensure_default_checkpoint(tmp_path / "c", build_script=tmp_path / "missing.sh")
