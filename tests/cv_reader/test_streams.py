"""Which stream, and which frame is frame n: the probe, the selection, the stage-2 mosaics and the uniform frames
of the model agree on real-world files (a cover-art track before the movie, a stream cut before a keyframe)."""

from __future__ import annotations

import gc

import av
import numpy as np
import pytest

from cv_reader import decode, probe_video, read_letterboxed_frames, select_patches
from llava.model.llava_ov.video_inputs import read_uniform_frames

from .synth import write_video

NUM_FRAMES = 100


@pytest.fixture(scope="module")
def cut_ts(tmp_path_factory):
    """An MPEG-TS cut in the middle of a GOP (a recording or segment that starts on P-frames): the frames before
    its first keyframe cannot be decoded. Frame i of the whole clip has brightness 40 + 1.5 i."""
    d = tmp_path_factory.mktemp("cut")
    texture = np.random.default_rng(0).integers(-20, 21, (96, 160, 3))
    frames = [np.clip(40 + 1.5 * i + texture, 0, 255).astype(np.uint8) for i in range(NUM_FRAMES)]
    data = write_video(d / "whole.ts", frames, gop=10, bframes=0).read_bytes()
    cut = d / "cut.ts"
    cut.write_bytes(data[(len(data) * 3 // 10) // 188 * 188 + 188 * 5 :])  # TS packets are 188 bytes
    return cut


def test_frames_before_the_first_keyframe_show_the_first_decoded_one(cut_ts, caplog):
    """They are reported, give no patches, and show the nearest decoded frame (the first one after them, not the
    end of the video)."""
    with caplog.at_level("WARNING", logger="cv_reader.pipeline"):
        selection = select_patches(cut_ts)
    missing = selection.meta["missing_frames"]
    assert missing and missing[0] == 0, missing
    assert "could not be decoded" in caplog.text and str(cut_ts) in caplog.text
    pad = selection.meta["pad_info"]
    image = selection.mosaics()[0]
    content = image[pad["pad_top"] : 576 - pad["pad_bottom"], pad["pad_left"] : 576 - pad["pad_right"]]
    start = NUM_FRAMES - selection.meta["num_packets"]  # the cut's first frame; a keyframe follows within one GOP
    assert 40 + 1.5 * start - 5 < float(content.mean()) < 40 + 1.5 * (start + 10) + 5, (content.mean(), start)


def test_stage2_frames_are_the_selections_frames(cut_ts):
    """`read_letterboxed_frames` (mosaics rebuilt from stored positions) indexes frames as the selection does: by
    display position among the packets, so undecodable leading frames shift nothing."""
    selection = select_patches(cut_ts)
    frames, frame_of_t = read_letterboxed_frames(cut_ts, selection.frame_ids)
    sampled = selection.sampled_frames()
    for t in range(len(selection.frame_ids)):
        np.testing.assert_array_equal(frames[frame_of_t[t]], sampled[t], err_msg=f"t={t}")


def test_uniform_frames_of_a_cut_stream(cut_ts):
    """The model's uniform frames: no error, frame n is display frame n (frames that cannot be decoded repeat the
    nearest decoded one)."""
    info = probe_video(cut_ts)
    frames = read_uniform_frames(cut_ts, num_frames=8)
    assert len(frames) == 8
    start = NUM_FRAMES - info.num_frames  # num_frames: the cut's packets
    last = start + info.num_frames - 1
    assert abs(float(frames[-1].mean()) - (40 + 1.5 * last)) < 6  # the last frame is the last frame
    assert 40 + 1.5 * start - 5 < float(frames[0].mean()) < 40 + 1.5 * (start + 10) + 5
    (only,) = read_uniform_frames(cut_ts, num_frames=1)  # frame 0 alone is wanted and cannot be decoded
    np.testing.assert_array_equal(only, frames[0])


@pytest.fixture(scope="module")
def cover_first(tmp_path_factory):
    """A Matroska file whose first video track is a one-frame cover picture (MJPEG), the movie second."""
    path = tmp_path_factory.mktemp("cover") / "cover_first.mkv"
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 300, 300, "yuvj420p"
        movie = container.add_stream("libx264", rate=25)
        movie.width, movie.height, movie.pix_fmt = 160, 96, "yuv420p"
        picture = av.VideoFrame.from_ndarray(np.full((300, 300, 3), 200, np.uint8), format="rgb24")
        for packet in [*cover.encode(picture.reformat(format="yuvj420p")), *cover.encode()]:
            container.mux(packet)
        background = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
        for i in range(40):
            frame = av.VideoFrame.from_ndarray(np.roll(background, 2 * i, axis=1).copy(), format="rgb24")
            for packet in movie.encode(frame):
                container.mux(packet)
        for packet in movie.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        assert [v.codec_context.name for v in container.streams.video] == ["mjpeg", "h264"]  # the premise
    return path


def test_the_movie_is_read_not_the_cover(cover_first):
    info = probe_video(cover_first)
    assert (info.codec, info.num_frames, info.width, info.height) == ("h264", 40, 160, 96)
    selection = select_patches(cover_first)
    assert selection.meta["num_packets"] == 40 and selection.meta["signal"].startswith("codec_mv")
    frames = read_uniform_frames(cover_first, num_frames=4)
    assert [f.shape for f in frames] == [(96, 160, 3)] * 4
    canvases, _ = read_letterboxed_frames(cover_first, selection.frame_ids)
    np.testing.assert_array_equal(canvases[0], selection.sampled_frames()[0])


def test_a_damaged_packet_loses_only_its_own_frame(tmp_path, caplog):
    """A packet the decoder rejects (here an impossible NAL size) is skipped; the frames after it still decode
    (decoding used to stop there, and every later sampled frame repeated the last good one)."""
    rng = np.random.default_rng(2)
    background = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
    frames = [np.roll(background, 3 * i, axis=1) for i in range(60)]
    path = write_video(tmp_path / "clip.mp4", frames, gop=32, bframes=2)
    data = bytearray(path.read_bytes())
    with av.open(str(path)) as container:
        positions = [packet.pos for packet in container.demux(video=0) if packet.size]
    data[positions[20] : positions[20] + 4] = b"\xff\xff\xff\xff"  # the first NAL's length prefix
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="cv_reader.decode"):
        selection = select_patches(damaged)
    assert "1 damaged packets skipped" in caplog.text and str(damaged) in caplog.text
    assert len(selection.meta["missing_frames"]) == 1, selection.meta["missing_frames"]


def test_frames_an_edit_list_cuts_off_are_not_counted(tmp_path):
    """A trimmed MP4 (`ffmpeg -ss ... -c copy`, phone editors) keeps the packets before the cut, flagged discard by
    its edit list: FFmpeg decodes them as references and never outputs them. They are not frames of the video."""
    rng = np.random.default_rng(3)
    background = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
    frames = [np.clip(background.astype(int) // 2 + 2 * i, 0, 255).astype(np.uint8) for i in range(50)]
    whole = write_video(tmp_path / "whole.mp4", frames, gop=32, bframes=2)
    trimmed = tmp_path / "trimmed.mp4"
    with av.open(str(whole)) as src, av.open(str(trimmed), "w") as dst:
        stream_in = src.streams.video[0]
        stream_out = dst.add_stream_from_template(stream_in)
        shift = round(12 / (stream_in.average_rate * stream_in.time_base))  # the first 12 frames before time 0
        for packet in src.demux(stream_in):
            if packet.dts is None:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = stream_out
            dst.mux(packet)
    with av.open(str(trimmed)) as container:
        shown = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(shown) == 38  # the premise: the muxer wrote an edit list and the demuxer applies it
    assert probe_video(trimmed).num_frames == 38
    selection = select_patches(trimmed)
    assert selection.meta["missing_frames"] == []
    first, last = read_uniform_frames(trimmed, num_frames=2)
    np.testing.assert_array_equal(first, shown[0])
    np.testing.assert_array_equal(last, shown[-1])


def test_stream_choice_order():
    """Decodable first, then not cover art, then most packets, then the first."""
    from types import SimpleNamespace

    from cv_reader.decode import choose_video_stream

    def stream(index, codec="h264", cover=False):
        disposition = av.stream.Disposition.attached_pic if cover else av.stream.Disposition(0)
        return SimpleNamespace(index=index, codec_context=SimpleNamespace(name=codec), disposition=disposition)

    undecodable, cover, small, big = stream(0, codec="none"), stream(1, cover=True), stream(2), stream(3)
    streams = (undecodable, cover, small, big)
    assert choose_video_stream(streams, {0: 900, 1: 800, 2: 10, 3: 50}) is big
    assert choose_video_stream(streams, {}) is small  # packets unknown: the first decodable movie
    assert choose_video_stream((undecodable, cover), {0: 900}) is cover  # cover art only when nothing else decodes
    assert choose_video_stream((undecodable,), {}) is undecodable  # open_video then says why it cannot be read


def test_a_frame_threaded_decode_that_fails_is_redone_with_slice_threads(monkeypatch, caplog):
    """A damaged VP9 stream made a frame-threaded decoder reject every packet after the damage (184 of 300 frames
    lost; slice threads conceal it and lose none): at its first rejected packet the stream is decoded again with slice
    threads, with the same `keep` (what a damaged stream's decoder skips changes the rest), and the frames already
    given out are not given again. Stand-in passes: the damage depends on the encoder's exact bits."""
    calls = []

    def fake_pass(path, *, export_mvs, keep, rank, stream_index, frame_threads, counts, quick_open):
        calls.append((frame_threads, keep))
        if frame_threads:
            yield 0, "f0"
            yield 1, "f1"
            raise decode._FrameThreadsFailed("packet rejected (InvalidDataError: ...)")
        for index in range(5):
            yield index, f"s{index}"

    monkeypatch.setattr(decode, "_decode_pass", fake_pass)
    keep = frozenset({0, 1, 3})
    with caplog.at_level("INFO", logger="cv_reader.decode"):
        got = list(decode.iter_indexed_frames("clip.webm", export_mvs=False, keep=keep, display_pts=(0, 1, 2, 3, 4)))
    assert got == [(0, "f0"), (1, "f1"), (2, "s2"), (3, "s3"), (4, "s4")]
    assert calls == [(True, keep), (False, keep)]
    assert "decoding again with slice threads" in caplog.text
    calls.clear()
    assert len(list(decode.iter_indexed_frames("clip.mp4", export_mvs=True))) == 5
    assert calls == [(False, None)]  # exported motion vectors: slice threads from the start (spec 11)


def test_frames_held_by_the_decoder_come_out_when_demuxing_fails(tmp_path):
    """A demuxing error (here an IVF frame header announcing 4 GiB) ends the stream; the decoder still holds its
    delayed frames (B-frame reordering, one per frame thread) and must be flushed: this one-good-packet file gave no
    frame at all with frame threads."""
    path = tmp_path / "clip.ivf"
    with av.open(str(path), "w", format="ivf") as container:
        stream = container.add_stream("libvpx", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            image = np.full((48, 64, 3), 60 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    first = 32 + 12 + int.from_bytes(data[32:36], "little")  # file header, then the first frame's header and data
    cut = tmp_path / "cut.ivf"
    cut.write_bytes(data[:first] + (0xFFFFFFF0).to_bytes(4, "little") + (1).to_bytes(8, "little") + bytes(16))
    assert [index for index, _ in decode.iter_indexed_frames(cut, export_mvs=False)] == [0]
    selection = select_patches(cut, num_frames=8, num_images=2, square_size=64)
    assert selection.meta["num_decoded_frames_read"] == 1


def test_opening_without_the_probe_decode_gives_the_same_frames(tmp_path):
    """`VideoInfo.quick_open` (open without FFmpeg's stream-info decode: several H.264 frames) changes nothing that is
    decoded: the same frames, pts, pixels and motion vectors, B-frames included."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (72, 200, 3), dtype=np.uint8)
    frames = [np.roll(base, 3 * i, axis=1)[:, :128] for i in range(40)]
    path = write_video(tmp_path / "b.mp4", frames, bframes=3, gop=20)
    info = probe_video(path)
    assert info.quick_open

    def decoded(quick: bool) -> list:
        out = []
        for index, frame in decode.iter_indexed_frames(
            path, export_mvs=True, display_pts=info.display_pts, quick_open=quick
        ):
            records = decode.motion_records(frame)
            fields = None if records is None else [records[name].tolist() for name in records.dtype.names]
            out.append((index, frame.pts, frame.to_ndarray(), fields))
        return out

    slow, quick = decoded(False), decoded(True)
    assert len(slow) == len(quick) == 40
    assert sum(fields is not None for *_, fields in slow) > 30
    for a, b in zip(slow, quick, strict=True):
        assert a[:2] == b[:2] and a[3] == b[3]
        np.testing.assert_array_equal(a[2], b[2])


def _live_frames() -> int:
    return sum(type(obj) is av.VideoFrame for obj in gc.get_objects())  # type(): no attribute lookups


def test_frames_whose_vectors_were_read_are_freed_at_once(tmp_path):
    """Reading a frame's motion vectors leaves no reference cycle (`frame.side_data` caches a container that points
    back to the frame): with the cyclic collector off, decoded frames are freed as the loop moves on, and a selection
    keeps none alive. With the cycle every frame stayed until a collection and the decoder's buffer pool grew to match
    (72 decoded 720p frames alive at once on a 4-s clip)."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (72, 200, 3), dtype=np.uint8)
    path = write_video(tmp_path / "b.mp4", [np.roll(base, 2 * i, axis=1)[:, :128] for i in range(40)], bframes=3)
    gc.collect()
    before = _live_frames()
    gc.disable()
    try:
        live, read = [], 0
        for index, frame in decode.iter_indexed_frames(path, export_mvs=True):
            read += decode.motion_records(frame) is not None
            del frame
            if index % 4 == 0:
                live.append(_live_frames() - before)
        assert read > 30  # vectors were read from most frames
        assert max(live) <= 3, live
        select_patches(path, num_frames=16, num_images=2, square_size=64)
        assert _live_frames() - before <= 0
    finally:
        gc.enable()


def test_which_streams_open_without_the_probe_decode():
    assert decode.opens_quickly([0, 1, 2, 3], reorder_known=False)  # no B-frames
    assert decode.opens_quickly([0, 3, 1, 2], reorder_known=True)  # B-frames, depth in the headers
    assert not decode.opens_quickly([0, 3, 1, 2], reorder_known=False)  # B-frames, depth unknown
    assert not decode.opens_quickly(None, reorder_known=False)  # pts missing or repeated: order unknown
    assert decode.opens_quickly(None, reorder_known=True)


def test_a_clip_cut_after_its_keyframe_says_so(tmp_path):
    """A clip cut after its only keyframe (P- and B-frames that reference nothing) decodes to no frame: the error
    names the file and the reason."""
    texture = np.random.default_rng(5).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    whole = write_video(tmp_path / "whole.mp4", [np.roll(texture, i, axis=1) for i in range(30)], gop=250)
    cut = tmp_path / "cut.mp4"
    with av.open(str(whole)) as source, av.open(str(cut), "w") as target:
        stream = source.streams.video[0]
        out = target.add_stream_from_template(stream)
        for n, packet in enumerate(p for p in source.demux(stream) if p.dts is not None):
            if n >= 3:  # the keyframe and the next two packets are gone
                packet.stream = out
                target.mux(packet)
    with pytest.raises(decode.VideoReadError, match=r"no_frames.*none of its 27 packets is a keyframe") as err:
        select_patches(cut)
    assert str(cut) in str(err.value)


def test_frames_whose_timestamps_are_out_of_order_are_all_read(tmp_path, caplog):
    """A broken mux that shows frames in another order than it decodes them (shuffled pts, monotonic dts): the
    decode does not stop at the last sampled display index while earlier ones are still to come (it stopped there
    and reported 7 of 16 sampled frames as undecodable)."""
    order = list(range(30))
    np.random.default_rng(3).shuffle(order)
    path = tmp_path / "shuffled.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"bf": "0", "x264-params": "threads=1"}
        packets = []
        for i in range(30):
            image = np.full((120, 160, 3), 60, np.uint8)
            image[20:50, 4 * i : 4 * i + 30] = (255, 0, 0)
            packets += stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24"))
        packets += stream.encode()
        for j, packet in enumerate(packets):
            packet.pts, packet.dts = order[j] + 30, j
            container.mux(packet)
    with caplog.at_level("WARNING", logger="cv_reader"):
        selection = select_patches(path, num_frames=16)
    assert selection.meta["missing_frames"] == [] and "could not be decoded" not in caplog.text
    assert selection.meta["num_decoded_frames_read"] == 30
