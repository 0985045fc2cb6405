"""Bad inputs raise `VideoReadError` naming the file and the reason."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

from cv_reader import VideoReadError, probe_video, select_patches


@pytest.fixture(scope="module")
def bad_files(moving_clip, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    data = moving_clip.path.read_bytes()
    (d / "zero.mp4").write_bytes(b"")
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov atom at the end: cut off
    (d / "text.mp4").write_text("definitely not a video\n" * 100)
    (d / "badcodec.mp4").write_bytes(data.replace(b"avc1", b"zzzz"))  # unknown codec tag
    os.mkfifo(d / "fifo.mp4")  # opening it would wait for a writer forever
    (d / "folder.mp4").mkdir()
    (d / "dangling.mp4").symlink_to(d / "nowhere.mp4")
    (d / "loop.mp4").symlink_to(d / "loop.mp4")  # ELOOP: not "no such file"
    (d / "notdir.mp4").write_bytes(b"x")
    # A playlist in disguise: FFmpeg's concat demuxer refuses the URL with EPERM, which is not "permission denied".
    (d / "playlist.mp4").write_text("ffconcat version 1.0\nfile 'http://127.0.0.1:9/a.mp4'\n")
    with av.open(str(d / "audio.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return d


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("zero.mp4", "empty"),
        ("truncated.mp4", "not_a_video"),
        ("text.mp4", "not_a_video"),
        ("badcodec.mp4", "unsupported_codec"),
        ("audio.m4a", "no_video_stream"),
        ("missing.mp4", "missing"),
        ("fifo.mp4", "not_a_video"),
        ("folder.mp4", "not_a_video"),
        ("dangling.mp4", "missing"),
        ("loop.mp4", "unreadable"),
        ("notdir.mp4/clip.mp4", "missing"),
        ("playlist.mp4", "not_a_video"),
    ],
)
def test_bad_input_names_file_and_reason(bad_files, name, reason):
    path = bad_files / name
    with pytest.raises(VideoReadError) as info:
        select_patches(path)
    assert str(path) in str(info.value) and info.value.reason == reason
    with pytest.raises(VideoReadError):
        probe_video(path)


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("dangling.mp4", "broken symbolic link to"),
        ("loop.mp4", "symbolic links that loop"),
        ("truncated.mp4", "truncated"),
        ("badcodec.mp4", "an unknown codec, or a damaged header"),
    ],
)
def test_the_reason_says_what_is_wrong(bad_files, name, detail):
    with pytest.raises(VideoReadError) as info:
        select_patches(bad_files / name)
    assert detail in info.value.detail


def test_the_error_names_the_path_as_given(bad_files):
    """`Path("")` is ".": the error used to name the current folder, "is a directory"; a trailing slash was dropped."""
    with pytest.raises(VideoReadError) as info:
        select_patches("")
    assert info.value.reason == "missing" and info.value.path == "" and "empty" in info.value.detail
    folder = f"{bad_files / 'folder.mp4'}/"
    with pytest.raises(VideoReadError) as info:
        select_patches(folder)
    assert info.value.path == folder and info.value.reason == "not_a_video"


def test_unreadable_file_says_so(moving_clip, monkeypatch):
    """Permission denied is not "not a video" (tests run as root here, so the refusal is simulated)."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(moving_clip.path))

    monkeypatch.setattr(av, "open", refuse)
    with pytest.raises(VideoReadError) as info:
        select_patches(moving_clip.path)
    assert info.value.reason == "unreadable" and str(moving_clip.path) in str(info.value)


def test_truncated_streamable_file_decodes_what_is_there(tmp_path, moving_clip):
    """A cut MPEG-TS keeps its head decodable: frame count and selection follow what is there."""
    import av as _av

    ts = tmp_path / "clip.ts"
    with _av.open(str(moving_clip.path)) as src, _av.open(str(ts), "w", format="mpegts") as dst:
        stream_in = src.streams.video[0]
        stream_out = dst.add_stream_from_template(stream_in)
        for packet in src.demux(stream_in):
            if packet.dts is None:
                continue
            packet.stream = stream_out
            dst.mux(packet)
    data = ts.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])
    selection = select_patches(cut)
    assert 10 < selection.meta["num_packets"] < 96
    assert selection.visidx_thw.shape == (10368, 3)


def test_relative_names_with_a_colon_are_files(moving_clip, tmp_path, monkeypatch):
    """FFmpeg reads a relative "name:rest" as a protocol: "Lecture 1:intro.mp4" failed with "protocol not found",
    and a file named "concat:clip.mp4" was silently read as the concat protocol over clip.mp4."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Lecture 1:intro.mp4").write_bytes(moving_clip.path.read_bytes())
    (tmp_path / "clip.mp4").write_bytes(moving_clip.path.read_bytes())
    (tmp_path / "concat:clip.mp4").write_text("not a video")
    assert select_patches("Lecture 1:intro.mp4").meta["num_packets"] == probe_video(moving_clip.path).num_frames
    with pytest.raises(VideoReadError) as info:
        select_patches("concat:clip.mp4")
    assert info.value.reason == "not_a_video"


class _Packet:
    def __init__(self, n: int, size: int = 100) -> None:
        self.n, self.size, self.stream = n, size, type("Stream", (), {"index": 0})()


class _SplicedContainer:
    """`demux` as PyAV's when a stream appears mid-file: the generator raises IndexError (PyAV issue 692: its stream
    table was sized at the start; in the wild the error comes while flushing at the end of a damaged MPEG-TS), and a
    new generator carries on from the demuxer's position."""

    def __init__(self, runs: list[list[_Packet]]) -> None:
        self.runs = runs

    def demux(self, *streams):
        run = self.runs.pop(0)
        yield from run
        if self.runs:
            raise IndexError("list index out of range")


def test_demux_carries_on_past_a_stream_appearing_mid_file():
    from cv_reader.decode import MAX_DEMUX_RESTARTS, demux_packets

    runs = [[_Packet(0), _Packet(1)], [_Packet(2), _Packet(-1, size=0)], [_Packet(-1, size=0)]]
    got = [(p.n, p.size) for p in demux_packets(_SplicedContainer(runs), path="x.ts")]
    assert got == [(0, 100), (1, 100), (2, 100), (-1, 0)]  # every packet, and the end-of-stream packet once

    class Endless:
        def demux(self, *streams):
            raise IndexError("list index out of range")
            yield  # a generator

    with pytest.raises(av.error.InvalidDataError):  # read as a truncated file by the callers
        list(demux_packets(Endless(), path="x.ts"))
    assert MAX_DEMUX_RESTARTS >= 10
