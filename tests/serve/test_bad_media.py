"""Damaged and hostile files (tests/serve/bad_media.py) through the shared chat logic: each is refused at load with
one `MediaError` line naming it (or, where the reader copes, loaded in full), the file loaded before stays loaded and
the conversation goes on; the image pixel limit is explicit."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import cv_reader
from llava.serve import ChatEngine, ChatSession, MediaError, load_media

from .bad_media import REFUSED


def test_bad_files_keep_the_session(engine: ChatEngine, playground_video: Path, bad_media: dict[str, Path]) -> None:
    with ChatSession(engine) as session:
        media = session.load(playground_video)
        list(session.ask("Does anything move?"))
        turns = list(session.turns)
        for name, path in bad_media.items():
            try:
                loaded = session.load(path)
            except MediaError as error:
                message = str(error)
                assert "\n" not in message and path.name in message, message
                assert session.media is media and session.turns == turns  # nothing of the old state is lost
            else:
                assert name not in [*REFUSED, "directory"], f"{name} loaded"
                # Loaded means read in full: the processor takes it as is, and the session moves on to it.
                assert loaded.num_visual_tokens > 0 and session.media is loaded
                session.load(playground_video)
                media, turns = session.media, []
        list(session.ask("Which way?"))  # the conversation goes on
        assert session.last_count.visual_tokens == media.num_visual_tokens


def test_messages_say_what_is_wrong(engine: ChatEngine, bad_media: dict[str, Path]) -> None:
    processor = engine.processor
    with pytest.raises(MediaError, match=r"a_folder\.mp4 is a directory, not a file"):
        load_media(bad_media["directory"], processor)
    with pytest.raises(MediaError, match=r"bomb_20000x20000\.png: .*--max-image-pixels"):
        load_media(bad_media["bomb_20000x20000.png"], processor)
    with pytest.raises(MediaError, match=r"empty\.mp4 is empty \(0 bytes\)"):
        load_media(bad_media["empty.mp4"], processor)
    with pytest.raises(MediaError, match=r"audio_only\.m4a is not a video or an image \(streams: audio\)"):
        load_media(bad_media["audio_only.m4a"], processor)


def test_special_paths(engine: ChatEngine, tmp_path: Path) -> None:
    """A pipe would block a reader forever: it is refused by its kind, without opening it."""
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    with pytest.raises(MediaError, match="stream.mp4 is not a regular file"):
        load_media(fifo, engine.processor)
    with pytest.raises(MediaError, match="gone.mp4: no such file"):
        load_media(tmp_path / "gone.mp4", engine.processor)


def test_image_pixel_limit(engine: ChatEngine, tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    PIL.Image.fromarray(np.full((50, 400, 3), 128, dtype=np.uint8)).save(path)
    with pytest.raises(MediaError, match=r"wide\.png: the image is 400x50 = 20000 pixels, over .* 10000 pixels"):
        load_media(path, engine.processor, max_image_pixels=10_000)
    media = load_media(path, engine.processor, max_image_pixels=20_000)
    assert media.kind == "image" and media.item.size == (400, 50)  # decoded at load


def test_truncated_image_is_refused_at_load(engine: ChatEngine, playground_image: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    path.write_bytes(playground_image.read_bytes()[:200])
    with pytest.raises(MediaError, match=r"cut\.png"):
        load_media(path, engine.processor)


def test_any_reader_exception_is_one_line(
    engine: ChatEngine, playground_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a reader raises (here a KeyError from patch selection) reaches the user as a MediaError."""

    def broken(*args, **kwargs):
        raise KeyError("motion_vectors\nsecond line")

    monkeypatch.setattr(cv_reader, "select_patches", broken)
    with pytest.raises(MediaError, match=r"^clip\.mp4: cannot be read \(KeyError: 'motion_vectors\\nsecond line'\)$"):
        load_media(playground_video, engine.processor)


def test_uniform_frames_are_read_at_load(
    engine: ChatEngine, playground_video: Path, bad_media: dict[str, Path]
) -> None:
    """A processor in "uniform" video mode: the frames are decoded at load too, and damaged files refused there."""
    processor = copy.deepcopy(engine.processor)
    processor.video_mode = "uniform"
    media = load_media(playground_video, processor)
    assert len(media.item.frames) == processor.num_video_frames and media.figure is None
    assert media.num_visual_tokens == processor.num_video_frames * processor.video_grid**2
    for name in ("truncated_faststart.mp4", "corrupt_payload.mp4", "empty.mp4"):
        with pytest.raises(MediaError, match=name.replace(".", r"\.")):
            load_media(bad_media[name], processor)
