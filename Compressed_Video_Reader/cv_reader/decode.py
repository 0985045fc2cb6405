"""Opening, probing and decoding videos with PyAV (stock FFmpeg), with clear errors naming the file."""

from __future__ import annotations

import bisect
import errno
import itertools
import logging
import math
import os
import stat
import threading
from collections.abc import Callable, Container, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
from av.sidedata.sidedata import SideDataContainer
from av.video.reformatter import VideoReformatter

from .errors import VideoReadError
from .geometry import oriented

logger = logging.getLogger(__name__)

# Decoders that export AVMotionVector side data with `flags2=+export_mvs` (spec 11), by the decoder name FFmpeg
# reports (`codec_context.name`: FLV1 decodes as "flv", MS-MPEG4 v3 as "msmpeg4"). HEVC, VP8/9, AV1 export none.
MV_CODECS = frozenset(
    {
        "h264",
        "mpeg1video",
        "mpeg2video",
        "mpegvideo",
        "mpeg4",
        "msmpeg4v1",
        "msmpeg4v2",
        "msmpeg4",
        "wmv1",
        "wmv2",
        "h263",
        "h263p",
        "h263i",
        "flv",
        "h261",
        "rv10",
        "rv20",
        "rv30",
        "rv40",
        "vc1",
        "wmv3",
        "svq1",
    }
)
# Pixel formats whose plane 0 is 8-bit luma, read without conversion.
_LUMA8_FORMATS = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
        "nv12",
        "nv21",
        "nv16",
        "gray",
    }
)

# Planar formats whose plane 0 is little-endian luma of 9-16 bits in 16-bit words (the low bits), read without
# conversion: the bits above 8 of each (`luma_samples`). Big-endian and MSB-aligned formats (p010) go through swscale.
_LUMA16_FORMATS = {
    f"{layout}{bits}le": bits - 8
    for layout, depths in (
        ("yuv420p", (9, 10, 12, 14, 16)),
        ("yuv422p", (9, 10, 12, 14, 16)),
        ("yuv444p", (9, 10, 12, 14, 16)),
        ("yuv440p", (10, 12)),
        ("yuva420p", (9, 10, 16)),
        ("yuva444p", (9, 10, 12, 16)),
        ("gray", (9, 10, 12, 14, 16)),
    )
    for bits in depths
}

PICT_I, PICT_P, PICT_B = 1, 2, 3  # AVPictureType values as PyAV reports them

_decoder_threads = 0  # threads per decoder in this process; 0: FFmpeg's automatic count (one per core, at most 16)


def decoder_threads() -> int:
    """Threads per decoder in this process (`set_decoder_threads`; 0: FFmpeg's automatic count)."""
    return _decoder_threads


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def process_cores() -> int:
    """Cores this process has for its threads: its decoder thread count when set (a batch worker's share), else
    the CPUs it may run on."""
    return _decoder_threads or available_cpus()


def set_decoder_threads(count: int) -> None:
    """Threads per decoder for the rest of this process (0: FFmpeg's automatic count). The batch pool gives each
    worker process its share of the cores: N workers each decoding with a thread per core would run N x cores
    threads, and a frame-threaded decoder holds a picture per thread (at 4K, 12 MiB each)."""
    global _decoder_threads
    _decoder_threads = max(int(count), 0)


@dataclass(frozen=True)
class VideoInfo:
    """What a demux-only probe learns about a video (no decoding).

    Attributes:
        path: the file.
        num_frames: N, non-empty video packets that are shown (spec 3: one frame count for train and eval; packets an
            MP4 edit list cuts off are decoded but never output, as in upstream's `len(read_video(...))`).
        codec: decoder name (e.g. "h264").
        width, height: coded size in pixels (before rotation).
        pix_fmt: decoder pixel format name, or None if unknown before decoding.
        exports_motion_vectors: whether the codec can export motion vectors through FFmpeg.
        display_pts: the packets' pts in display order (sorted), so that a packet's display index is known before
            it is decoded; None when some packet has no pts or two share one (then frames are counted as they come).
        stream_index: the container stream read (`choose_video_stream`); pass it on to `iter_indexed_frames`.
        quick_open: whether a decoder may open the file without FFmpeg's stream-info decode (`open_video`'s
            `demux_only`): the frames come out in display order without it unless the stream reorders frames and
            its headers do not say how deep (H.264 without the VUI reorder fields), which only that probe decode
            learns; pass it on to `iter_indexed_frames`.
    """

    path: str
    num_frames: int
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    exports_motion_vectors: bool
    display_pts: tuple[int, ...] | None = None
    stream_index: int | None = None
    quick_open: bool = False


def open_video(
    path: str | Path, *, demux_only: bool = False, stream_index: int | None = None
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open `path` and return its container and video stream, or raise `VideoReadError` saying why.

    `demux_only`: skip the decoding of FFmpeg's stream-info probe. Opening a file decodes its first frames to learn
    the stream's parameters (for H.264, several frames until the reorder depth is known: 5, 19 and 33 ms at 360p,
    720p and 1080p, a tenth of a plain decode of a 4-s 720p clip); with this flag those probe decoders skip every
    frame, so the pixel format stays unknown (None). A caller that decodes may set it too when
    `VideoInfo.quick_open` (PyAV decodes with a codec context of its own, which the flag does not touch).
    `stream_index`: the container stream to read (`VideoInfo.stream_index`); by default the first video stream that
    is not cover art."""
    # The errors of the file itself name it as given (Path("") would name the current folder, and a trailing slash
    # would be dropped).
    given = os.fspath(path)
    if not given:
        raise VideoReadError(given, "missing", detail="the path is empty")
    path = Path(path)
    status = _stat(path, given)
    if stat.S_ISDIR(status.st_mode):
        raise VideoReadError(given, "not_a_video", detail="is a directory")
    if not stat.S_ISREG(status.st_mode):  # a pipe would block the open until a writer comes, and a device never ends
        raise VideoReadError(given, "not_a_video", detail="not a regular file (a pipe, socket or device)")
    if status.st_size == 0:
        raise VideoReadError(given, "empty", detail="zero-byte file")
    try:
        # An absolute name: FFmpeg reads a relative "name:rest" as protocol `name` ("a:b.mp4" -> protocol not
        # found; "concat:x.mp4" -> the concat protocol reading x.mp4, not the file of that name).
        location = os.path.abspath(path)
        container = av.open(location, mode="r", options={"skip_frame": "all"} if demux_only else None)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        if getattr(err, "errno", None) == errno.EACCES:  # (EPERM is a demuxer refusing, e.g. an unsafe playlist)
            raise VideoReadError(path, "unreadable", detail=f"permission denied ({err})") from err
        raise VideoReadError(
            path, "not_a_video", detail=f"cannot open: not a video, or truncated/corrupt; {err}"
        ) from err
    if not container.streams.video:
        kinds = sorted({other.type for other in container.streams}) or ["none"]
        container.close()
        # Only data streams, or none: a header that lost its video track (often a file cut short) more likely than
        # a file made without one.
        hint = "" if {"audio", "subtitle"} & set(kinds) else "; truncated or damaged?"
        raise VideoReadError(path, "no_video_stream", detail=f"streams: {', '.join(kinds)}{hint}")
    if stream_index is None:
        stream = choose_video_stream(container.streams.video, {})
    else:
        stream = next((v for v in container.streams.video if v.index == stream_index), None)
        if stream is None:
            container.close()
            raise VideoReadError(path, "no_video_stream", detail=f"stream {stream_index} is not a video stream")
    try:
        codec_context = stream.codec_context
        name = codec_context.name if codec_context is not None else None
    except (av.FFmpegError, ValueError) as err:
        container.close()
        raise VideoReadError(path, "unsupported_codec", detail=f"{type(err).__name__}: {err}") from err
    if not name or name == "none":
        container.close()
        raise VideoReadError(
            path, "unsupported_codec", detail="FFmpeg has no decoder for this video stream: an unknown codec, or a"
            " damaged header"
        )  # fmt: skip
    return container, stream


def _stat(path: Path, name: str) -> os.stat_result:
    """`os.stat(path)`, or `VideoReadError` (naming `name`) saying why `path` cannot be reached: no such file, a
    broken or looping symbolic link, a folder on the way that may not be searched, a name too long."""
    try:
        return os.stat(path)
    except OSError as err:
        code = err.errno
        if code == errno.ENOENT and os.path.islink(path):
            raise VideoReadError(name, "missing", detail=f"broken symbolic link to {os.readlink(path)}") from err
        if code == errno.ENOENT or code == errno.ENOTDIR:
            raise VideoReadError(name, "missing", detail="no such file") from err
        if code == errno.ELOOP:
            raise VideoReadError(name, "unreadable", detail="symbolic links that loop") from err
        if code == errno.EACCES:
            raise VideoReadError(name, "unreadable", detail="permission denied on a folder of the path") from err
        raise VideoReadError(name, "unreadable", detail=f"{os.strerror(code or 0)}") from err
    except ValueError as err:  # an embedded NUL byte
        raise VideoReadError(name, "missing", detail=f"not a valid path ({err})") from err


def _decodable(stream: av.video.stream.VideoStream) -> bool:
    try:
        context = stream.codec_context
        return context is not None and context.name not in (None, "", "none")
    except (av.FFmpegError, ValueError):
        return False


def choose_video_stream(
    streams: tuple[av.video.stream.VideoStream, ...], packets: dict[int, int]
) -> av.video.stream.VideoStream:
    """The video stream to read: one FFmpeg can decode, then not cover art (attached pictures), then the one with
    the most packets (`packets`: count per stream index, when known), then the first. A Matroska or MP4 file may hold
    a one-frame cover or thumbnail track before the movie; the first video stream would be that."""

    def rank(stream: av.video.stream.VideoStream) -> tuple:
        cover = bool(stream.disposition & av.stream.Disposition.attached_pic)
        return _decodable(stream), not cover, packets.get(stream.index, 0), -stream.index

    return max(streams, key=rank)


MAX_DEMUX_RESTARTS = 100  # streams appearing mid-file before a damaged file is read as ending there


def demux_packets(
    container: av.container.InputContainer, *streams: av.stream.Stream, path: str | Path
) -> Iterator[av.Packet]:
    """`container.demux(*streams)`, carried on past streams that appear mid-file. A damaged or spliced MPEG-TS can
    announce a new PID while it is read; PyAV's demux generator then raises IndexError when it meets that stream
    (its per-stream table was sized when it started: PyAV issue 692; seen while flushing at the end of a bit-flipped
    TS, where the decoder then lost its last frames) and is dead. The demuxer itself is fine: a new generator, sized
    for the current stream list, goes on from where the old one stopped. FFmpeg errors end the stream as before
    (truncated file)."""
    restarts, flushed = 0, set()
    while True:
        try:
            for packet in container.demux(*streams):
                if packet.size == 0:  # the end-of-stream packet: once per stream, also across a restart
                    if packet.stream.index in flushed:
                        continue
                    flushed.add(packet.stream.index)
                yield packet
            return
        except IndexError:
            restarts += 1
            if restarts > MAX_DEMUX_RESTARTS:
                raise av.error.InvalidDataError(errno.EINVAL, "too many streams appeared mid-file") from None
            if restarts == 1:
                logger.info("%s: a stream appeared mid-file (damaged or spliced stream); reading on", path)


def opens_quickly(decode_order_pts: list[int] | None, *, reorder_known: bool) -> bool:
    """`VideoInfo.quick_open` of a stream whose packets have these pts (decode order; None when some are missing or
    repeated) and whose headers gave a reorder depth (`reorder_known`: the demux-only probe's `has_b_frames`). Frames
    reordered (B-frames) with no depth in the headers (H.264 without the VUI reorder fields): a decoder opened
    without the stream-info probe's decode would drop the first out-of-order frames, until it learns the depth."""
    if reorder_known:
        return True
    if decode_order_pts is None:
        return False
    return all(later > earlier for earlier, later in itertools.pairwise(decode_order_pts))


def probe_video(path: str | Path) -> VideoInfo:
    """Count the decodable frames of `path` by demuxing (cheap: no decoding) and read its codec and size."""
    container, _ = open_video(path, demux_only=True)
    try:
        videos = container.streams.video
        counts = dict.fromkeys((v.index for v in videos), 0)
        stamps: dict[int, list[int | None]] = {v.index: [] for v in videos}
        discarded = dict.fromkeys(counts, 0)
        try:  # every video stream in one pass (the demuxer reads the whole file either way)
            for packet in demux_packets(container, *videos, path=path):
                if packet.size == 0:
                    continue
                if packet.is_discard:  # before an edit list's start (a trimmed MP4): decoded, never shown
                    discarded[packet.stream.index] += 1
                    continue
                counts[packet.stream.index] += 1
                stamps[packet.stream.index].append(packet.pts)
        except av.FFmpegError as err:  # truncated files: keep the packets read so far
            logger.warning("%s: demux stopped after %d packets (%s)", path, sum(counts.values()), err)
        stream = choose_video_stream(videos, counts)
        count, pts = counts[stream.index], stamps[stream.index]
        if count == 0 and discarded[stream.index]:
            raise VideoReadError(path, "no_frames", detail="every packet lies before the edit list's start")
        ctx = stream.codec_context
        if count == 0:
            raise VideoReadError(path, "no_frames", detail="the video stream holds no packets")
        pix_fmt = ctx.pix_fmt if ctx.pix_fmt else None
        usable = None not in pts and len(set(pts)) == len(pts)
        return VideoInfo(
            path=str(path),
            num_frames=count,
            codec=ctx.name,
            width=ctx.width,
            height=ctx.height,
            pix_fmt=pix_fmt,
            exports_motion_vectors=ctx.name in MV_CODECS,
            display_pts=tuple(sorted(pts)) if usable else None,
            stream_index=stream.index,
            quick_open=opens_quickly(pts if usable else None, reorder_known=bool(ctx.has_b_frames)),
        )
    finally:
        container.close()


class _FrameThreadsFailed(Exception):
    """A packet failed while decoding with frame threads (`_decode_pass`)."""


@dataclass
class _DecodeCounts:
    produced: int = 0
    rejected: int = 0
    first_error: str = ""
    packets: int = 0
    keyframes: int = 0

    def why_none(self) -> str:
        """What the error for a stream without a decoded frame adds: most often a clip cut after its keyframe."""
        if self.packets and not self.keyframes:
            return f"; none of its {self.packets} packets is a keyframe (a clip cut after its keyframe?)"
        return ""


def iter_indexed_frames(
    path: str | Path,
    *,
    export_mvs: bool,
    keep: Container[int] | None = None,
    display_pts: tuple[int, ...] | None = None,
    stream_index: int | None = None,
    quick_open: bool = False,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Decode the video stream (`stream_index`, as `open_video`) in display order, yielding `(display index, frame)`.
    `quick_open`: `VideoInfo.quick_open` (the file is opened without the stream-info probe's decode).

    With `keep` and `display_pts` (`VideoInfo.display_pts`), packets whose display index is not in `keep` are
    decoded with `skip_frame = NONREF`: a non-reference frame nobody asked for (most B-frames) is not decoded at
    all, while reference frames always are (later frames predict from them). Without them every frame is decoded
    and counted as it comes.

    Threads: slice threading only when motion vectors are exported (frame threading occasionally corrupts them,
    spec 11); frame and slice threading otherwise (HEVC, VP9, AV1, the pixel reads of stage 2), whose pixels are the
    same bits either way: on one-slice streams, which a slice-threaded decoder runs on one core, select + mosaics
    of a 10-s 720p HEVC clip went from 1.48x to 1.10x of a plain (PyAV default, slice-threaded) decode, a 10-s 360p
    VP9 clip from 2.08x to 1.85x (`benchmarks/codec.py --only hevc --baseline ...`). A damaged stream is another
    matter: after one bad VP9 packet a frame-threaded decoder rejected every later packet (184 of 300 frames lost,
    none with slice threads, which conceal the damage), so at the first rejected packet the stream is decoded again
    with slice threads, going on after the frames already given out.
    A packet the decoder rejects (damaged data) is skipped and decoding goes on with the next one, as the ffmpeg
    tool does (one warning counts them); a demuxing error ends the stream there (truncated file). No decoded frame
    at all raises `VideoReadError`.
    """
    rank = {pts: index for index, pts in enumerate(display_pts)} if keep is not None and display_pts else None
    counts = _DecodeCounts()
    shown: set[int] = set()  # display indices given out (a retry with slice threads skips them)
    frame_threads = not export_mvs
    try:
        while True:
            # The same `keep` on a retry (not less the frames shown): which packets a damaged stream's decoder skips
            # changes what it makes of the rest (an AV1 stream lost every other frame after its first was skipped).
            passing = _decode_pass(
                path,
                export_mvs=export_mvs,
                keep=keep,
                rank=rank,
                stream_index=stream_index,
                frame_threads=frame_threads,
                counts=counts,
                quick_open=quick_open,
            )
            try:
                for index, frame in passing:
                    if index not in shown:
                        shown.add(index)
                        yield index, frame
                break
            except _FrameThreadsFailed as err:
                logger.info("%s: %s with frame threads; decoding again with slice threads", path, err)
                frame_threads = False
            finally:
                passing.close()
    finally:  # also when the caller stops early (it has every frame it wanted)
        if counts.rejected:
            logger.warning("%s: %d damaged packets skipped (first: %s)", path, counts.rejected, counts.first_error)
    if not shown and counts.rejected:
        raise VideoReadError(
            path,
            "decode_error",
            detail=f"no frame could be decoded; {counts.rejected} packets rejected: {counts.first_error}"
            + counts.why_none(),
        )
    if not shown:
        raise VideoReadError(path, "no_frames", detail="no frame could be decoded" + counts.why_none())


def _decode_pass(
    path: str | Path,
    *,
    export_mvs: bool,
    keep: Container[int] | None,
    rank: dict[int, int] | None,
    stream_index: int | None,
    frame_threads: bool,
    counts: _DecodeCounts,
    quick_open: bool,
) -> Generator[tuple[int, av.VideoFrame], None, None]:
    """One decode of the stream for `iter_indexed_frames`; with `frame_threads`, the first rejected packet raises
    `_FrameThreadsFailed` instead of being skipped."""
    container, stream = open_video(path, stream_index=stream_index, demux_only=quick_open)
    counts.packets = counts.keyframes = 0  # (of this pass)
    try:
        stream.thread_type = "AUTO" if frame_threads else "SLICE"
        stream.thread_count = _decoder_threads
        context = stream.codec_context
        context.skip_frame = "DEFAULT"  # (`quick_open`: the probe's skipping is not this decoder's)
        if export_mvs:
            context.options = {"flags2": "+export_mvs"}
        index, demux_error = -1, None

        def numbered(frames: list[av.VideoFrame]) -> Iterator[tuple[int, av.VideoFrame]]:
            nonlocal index
            for frame in frames:
                counts.produced += 1
                index = rank.get(frame.pts, index + 1) if rank is not None else index + 1
                yield index, frame

        try:
            for packet in demux_packets(container, stream, path=path):
                if packet.size:
                    counts.packets += 1
                    counts.keyframes += packet.is_keyframe
                    if rank is not None:
                        context.skip_frame = "DEFAULT" if rank.get(packet.pts, -1) in keep else "NONREF"
                try:
                    frames = packet.decode()
                except av.FFmpegError as err:  # one damaged packet: the frames after it still decode
                    if frame_threads:
                        raise _FrameThreadsFailed(f"packet rejected ({type(err).__name__}: {err})") from err
                    counts.rejected += 1
                    counts.first_error = counts.first_error or f"{type(err).__name__}: {err}"
                    continue
                yield from numbered(frames)
        except av.FFmpegError as err:
            demux_error = err
        if demux_error is not None:
            # The frames the decoder still holds (B-frame reordering, one per frame thread) come out with a flush;
            # a truncated file would lose them otherwise (a one-packet VP8 file cut there gave no frame at all).
            logger.warning("%s: demuxing stopped after %d frames (%s)", path, counts.produced, demux_error)
            try:
                frames = context.decode(None)
            except av.FFmpegError:
                frames = []
            yield from numbered(frames)
    finally:
        container.close()


def same_size_frame(
    frame: av.VideoFrame, *, height: int, width: int, scaler: VideoReformatter | None = None
) -> av.VideoFrame:
    """`frame` scaled to the stream's first size, for streams whose size changes mid-way (concatenated segments,
    adaptive streaming captures). Marked as an I-frame: its motion vectors belong to another grid, so it is used
    like a frame without vectors (block matching), and later frames may take it as an anchor. `scaler`: a
    long-lived reformatter for the stream (a new one builds its scaler context for every frame)."""
    scaled = (scaler or VideoReformatter()).reformat(
        frame, width=width, height=height, interpolation="AREA", **_ONE_SWS_THREAD
    )
    scaled.pict_type = av.video.frame.PictureType.I
    return scaled


def at_first_size(
    frames: Generator[tuple[int, av.VideoFrame], None, None], *, path: str | Path
) -> Generator[tuple[int, av.VideoFrame], None, None]:
    """`frames` (`iter_indexed_frames`) with every frame at the first frame's size (`same_size_frame`): the one
    rule for streams whose picture size changes mid-way, for the selection, stage 2 and the uniform frames alike.
    One warning names the first change."""
    first, warned, scaler = None, False, VideoReformatter()  # (its scaler context is built at its first use)
    try:
        for index, frame in frames:
            size = (frame.height, frame.width)
            if first is None:
                first = size
            elif size != first:
                if not warned:
                    logger.warning(
                        "%s: frame %d is %dx%d, the stream started at %dx%d (a concatenated or adaptive stream):"
                        " frames of another size are scaled to the first one",
                        path,
                        index,
                        frame.width,
                        frame.height,
                        first[1],
                        first[0],
                    )
                    warned = True
                frame = same_size_frame(frame, height=first[0], width=first[1], scaler=scaler)
            yield index, frame
    finally:
        frames.close()


T = TypeVar("T")


def read_frames(
    path: str | Path, wanted: Iterable[int], convert: Callable[[av.VideoFrame], T], *, info: VideoInfo | None = None
) -> dict[int, T]:
    """`{index: convert(frame)}` for each display index in `wanted`, indexed as `select_patches` indexes frames
    (`probe_video`'s packets in display order, the same stream), in one decode pass that skips the non-reference
    frames nobody wants and stops after the last wanted one; frames at the stream's first size (`at_first_size`).

    A wanted frame that cannot be decoded (a stream cut before a keyframe, a damaged tail) gets the value of the
    nearest decoded one (logged); when none of them decodes, the first frame after them stands in. Raises
    `VideoReadError` as `iter_indexed_frames` does (no decodable frame at all), or when nothing from the first
    wanted frame on decodes. `info`: the file's `probe_video`, when the caller has it (the probe demuxes the whole
    file)."""
    wanted = frozenset(wanted)
    last = max(wanted)
    info = info or probe_video(path)
    frames = at_first_size(
        iter_indexed_frames(
            path,
            export_mvs=False,
            keep=wanted,
            display_pts=info.display_pts,
            stream_index=info.stream_index,
            quick_open=info.quick_open,
        ),
        path=path,
    )
    got: dict[int, T] = {}
    try:
        for index, frame in frames:
            if (index in wanted or (index > last and not got)) and index not in got:
                got[index] = convert(frame)
            if index >= last and got:
                break
    finally:
        frames.close()
    if not got:
        raise VideoReadError(path, "no_frames", detail=f"frames {sorted(wanted)[:8]} and after could not be decoded")
    missing = sorted(wanted - set(got))
    if missing:
        logger.warning("%s: frames %s could not be decoded; each repeats the nearest decoded one", path, missing[:8])
    decoded = sorted(got)
    return {index: got[index if index in got else nearest_decoded(decoded, index)] for index in sorted(wanted)}


def nearest_decoded(decoded: list[int], index: int) -> int | None:
    """The frame that stands in for frame `index` when it could not be decoded, from the sorted indices of the
    frames that were: the last one before it (a truncated or damaged tail), or the first one after it (a stream
    cut before a keyframe); None when nothing was decoded."""
    at = bisect.bisect_left(decoded, index)
    return decoded[at - 1] if at > 0 else (decoded[0] if decoded else None)


def luma_in_place(frame: av.VideoFrame) -> bool:
    """Whether `luma_samples` reads the frame's luma in place (8-bit, or little-endian 9-16-bit planar), rather than
    converting it with swscale."""
    return frame.format.name in _LUMA8_FORMATS or frame.format.name in _LUMA16_FORMATS


def luma_samples(frame: av.VideoFrame, *, gray: VideoReformatter | None = None) -> tuple[np.ndarray, int]:
    """`(luma, extra bits)` of a decoded frame (coded orientation): uint8 [H, W] and 0, or for 9-16-bit planar
    formats (10-bit HDR phone video, 10-bit anime and streaming encodes) uint16 [H, W] and the bits above 8, read in
    place; `luma / 2**extra` is luma on the 8-bit scale, as `luma_plane`. Before, such luma went through swscale to
    8-bit grey, 0.3 ms per 360p frame, more than the rest of the decoding thread's work on a sampled frame, and a
    different scale (grey is full range: swscale stretched limited-range luma by 255/219, which the normalised
    energies do not see). Other formats (RGB, ...) still go through swscale to 8-bit grey (spec 13.2: upstream
    assumed yuv420p), with `gray`, a long-lived reformatter, for a stream: `frame.to_ndarray(format="gray")` builds a
    scaler context (and a thread per core) for every frame, 0.8 vs 0.3 ms per 360p frame for the same bytes."""
    name = frame.format.name
    extra = _LUMA16_FORMATS.get(name)
    if extra is not None or name in _LUMA8_FORMATS:
        plane = frame.planes[0]
        dtype = np.dtype(np.uint8 if extra is None else "<u2")
        data = np.frombuffer(plane, dtype=dtype).reshape(frame.height, plane.line_size // dtype.itemsize)
        return data[:, : frame.width], extra or 0
    return (gray or VideoReformatter()).reformat(frame, format="gray", **_ONE_SWS_THREAD).to_ndarray(), 0


def luma_plane(frame: av.VideoFrame, *, gray: VideoReformatter | None = None) -> np.ndarray:
    """uint8 [H, W] luma of a decoded frame (coded orientation): `luma_samples` on the 8-bit scale (luma of more
    than 8 bits truncated to its top 8)."""
    luma, extra = luma_samples(frame, gray=gray)
    return (luma >> extra).astype(np.uint8) if extra else luma


# One swscale thread per call: PyAV >= 17 scales with a thread per core by default, which for one frame of a few
# hundred thousand pixels costs more CPU than it saves (0.67 vs 1.12 ms of CPU per 360p frame, 1.85 vs 2.26 at
# 1080p, on 2 cores) and competes with the decoder; the pipeline already overlaps scaling with decoding.
_SWS_THREADS = int(av.__version__.split(".")[0]) >= 17  # PyAV's reformat takes `threads` from 17 on
_ONE_SWS_THREAD = {"threads": 1} if _SWS_THREADS else {}


class RgbScaler:
    """Decoded frames -> uint8 RGB at a given size, anti-aliased (swscale area averaging), in two swscale passes:
    area-scaled to 4:2:0 at the target size (`planes`), then converted to RGB at that size (`rgb`). swscale's
    one-pass scaled RGB output is 2-3x slower (per frame 0.73 vs 0.28 ms from 360p, 1.47 vs 0.45 ms from 720p, 1.79
    vs 0.86 ms from 1080p); the price is chroma at half the output resolution, as in the 4:2:0 JPEG mosaics the
    models are trained on (luma is the same to 48 dB PSNR, RGB to 44 dB on the demo clips). The conversion is
    pointwise (each pixel's RGB from its luma and its 2x2 block's chroma), so converting planes assembled from
    even-aligned pieces gives the pieces' pixels (`planar.PlanarFrames`). One long-lived reformatter per pass: each
    keeps its scaler context (rebuilding it costs about 4x a frame)."""

    def __init__(self) -> None:
        self._scale, self._convert = VideoReformatter(), VideoReformatter()

    def __call__(
        self, frame: av.VideoFrame, *, height: int, width: int, rotation: int = 0, mirror: bool = False
    ) -> np.ndarray:
        """uint8 [height, width, 3] RGB of `frame` turned by `rotation` (counter-clockwise degrees, a multiple of
        90) and flipped left to right if `mirror` (the display orientation, `frame_orientation`) at that (display)
        size."""
        planes = self.planes(frame, height=height, width=width, rotation=rotation, mirror=mirror)
        return self.rgb(planes, height=height)

    def planes(
        self,
        frame: av.VideoFrame,
        *,
        height: int,
        width: int,
        rotation: int = 0,
        mirror: bool = False,
        even_rows: bool = True,
    ) -> av.VideoFrame:
        """The first pass: `frame` area-scaled to 8-bit 4:2:0 at the (display) size `height` x `width`, turned by
        `rotation` and flipped if `mirror`; an odd `height` gets one more row, a copy of the last (see `rgb`), unless
        not `even_rows` (`planar.PlanarFrames.put` adds that row as it stores the planes: no copy of the frame)."""
        turns = (rotation // 90) % 4
        coded_height, coded_width = (width, height) if turns % 2 else (height, width)
        small = self._scale.reformat(
            frame, width=coded_width, height=coded_height, format="yuv420p", interpolation="AREA", **_ONE_SWS_THREAD
        )
        if turns or mirror:
            # Turned (and flipped) as 4:2:0 planes (one byte per sample), not as RGB: np.rot90 of a [H, W, 3] array
            # copies 3-byte pixels one by one, 1.6 ms for a 576x324 canvas against 0.1 ms for its three planes.
            small = turned(small, turns, mirror=mirror)
        if height % 2 and even_rows:
            # swscale converts 4:2:0 of an odd height to RGB through its generic scaler, not its 4:2:0 -> RGB
            # routine: 13x slower (1.36 vs 0.10 ms at 576x471, the content of a 352x288 or 720x576 frame). The
            # same pixels one (repeated) row taller take the fast routine; `rgb` drops the extra row.
            small = with_rows(small, height + 1)
        return small

    def rgb(self, planes: av.VideoFrame, *, height: int, threads: int = 1) -> np.ndarray:
        """The second pass: uint8 [height, W, 3] RGB of 4:2:0 `planes` (from `planes`, or assembled like them).
        `threads`: swscale's threads for this conversion (0: one per core)."""
        return self.rgb_frame(planes, threads=threads).to_ndarray()[:height]

    def rgb_frame(self, planes: av.VideoFrame, *, threads: int = 1) -> av.VideoFrame:
        """`rgb` as the rgb24 frame itself (all its rows)."""
        options = {"threads": threads} if _SWS_THREADS else {}
        return self._convert.reformat(planes, format="rgb24", interpolation="AREA", **options)


class ThreadScalers(threading.local):
    """An `RgbScaler` per thread (`.scaler`, made on a thread's first use): a reformatter keeps its swscale context
    between calls, so one is not shared by threads that scale at once."""

    def __init__(self) -> None:
        self.scaler = RgbScaler()


# The frame properties that choose swscale's YUV -> RGB conversion.
COLOUR_PROPERTIES = ("color_range", "colorspace", "color_primaries", "color_trc")


def planes_like(frame: av.VideoFrame, *, width: int, height: int) -> av.VideoFrame:
    """A new frame of `frame`'s format and colour properties (they choose the RGB conversion) at another size."""
    out = av.VideoFrame(width, height, frame.format.name)
    for name in COLOUR_PROPERTIES:
        setattr(out, name, getattr(frame, name))
    return out


def plane_array(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """uint8 [rows, width] view of an 8-bit plane (without the row padding)."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


def turned(frame: av.VideoFrame, turns: int, *, mirror: bool = False) -> av.VideoFrame:
    """A copy of a planar 8-bit `frame` turned counter-clockwise by `turns` quarter turns, then flipped left to right
    if `mirror` (`np.rot90`, then `np.fliplr`, of each plane: one copy; for 4:2:0 of even sizes the RGB is that of
    the turned and flipped RGB, of an odd width a flip puts its chroma half a pixel over)."""
    width, height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
    out = planes_like(frame, width=width, height=height)
    for src, dst in zip(frame.planes, out.planes, strict=True):
        plane_array(dst)[...] = oriented(plane_array(src), turns, mirror=mirror)
    return out


def with_rows(frame: av.VideoFrame, rows: int) -> av.VideoFrame:
    """A copy of a planar 8-bit `frame` `rows` rows tall: its top rows, and where `rows` is more than its height,
    each plane's last row repeated. Colour properties are kept (they choose the RGB conversion)."""
    out = planes_like(frame, width=frame.width, height=rows)
    for src, dst in zip(frame.planes, out.planes, strict=True):
        src_rows, dst_rows = plane_array(src), plane_array(dst)
        kept = min(src.height, dst.height)
        dst_rows[:kept] = src_rows[:kept]
        dst_rows[kept:] = src_rows[kept - 1]
    return out


# 8-bit formats whose chroma is subsampled alike along both axes: their planes turn into the planes of the turned
# picture (4:2:2 would not: its chroma would be halved along the other axis).
_TURNABLE_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv444p", "yuvj444p", "gray"})


def upright_rgb(frame: av.VideoFrame, *, rotation: int, mirror: bool = False) -> np.ndarray:
    """uint8 [H, W, 3] RGB of a decoded frame at its own size, turned by `rotation` (counter-clockwise degrees, a
    multiple of 90) and flipped left to right if `mirror` (`frame_orientation`): its display orientation. The same
    pixels as `np.rot90` (then `np.fliplr`) of its RGB; where the format allows, the planes are turned before the
    conversion instead (a 1080p RGB frame takes 21 ms to turn, its 4:2:0 planes 2-3 ms)."""
    turns = (rotation // 90) % 4
    even = frame.width % 2 == 0 and frame.height % 2 == 0  # 4:2:0 chroma blocks stay whole
    if (turns or mirror) and frame.format.name in _TURNABLE_FORMATS and (even or "420" not in frame.format.name):
        return np.ascontiguousarray(turned(frame, turns, mirror=mirror).to_ndarray(format="rgb24"))  # (rows padded)
    return np.ascontiguousarray(oriented(frame.to_ndarray(format="rgb24"), turns, mirror=mirror))


def rgb_resized(
    frame: av.VideoFrame,
    *,
    height: int,
    width: int,
    scaler: RgbScaler | None = None,
    rotation: int = 0,
    mirror: bool = False,
) -> np.ndarray:
    """uint8 [height, width, 3] RGB of the frame turned by `rotation` (counter-clockwise degrees) and flipped if
    `mirror`, area-averaged (`RgbScaler`; pass a long-lived one for a stream)."""
    return (scaler or RgbScaler())(frame, height=height, width=width, rotation=rotation, mirror=mirror)


def motion_records(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's `AVMotionVector` records as a structured array, or None (I-frame / codec without vectors)."""
    # A container of our own rather than `frame.side_data`: that one is cached on the frame and points back to it, a
    # reference cycle that only the cyclic garbage collector frees. Every frame whose vectors were read stayed alive
    # until then (up to 72 decoded 720p frames at once on a 4-s clip), and the decoder's buffer pool grew to match:
    # ~10x the page faults of a plain decode; peak RSS of select + mosaics 180 -> 135 MiB on a 10-s 720p clip,
    # 760 -> 391 MiB on a 4-s 2160p clip.
    side = SideDataContainer(frame).get("MOTION_VECTORS")
    if side is None:
        return None
    # A copy: the view would keep the whole decoded frame alive while the sample waits for its references. Through
    # its bytes: numpy copies a structured array field by field, 0.46 ms for the 14k records of a 720p frame (a
    # tenth of the decoding thread's time beyond the decode itself on a 4-s clip), a memcpy takes a tenth of that.
    records = np.ascontiguousarray(side.to_ndarray())
    return records.view(np.uint8).copy().view(records.dtype)


def frame_orientation(frame: av.VideoFrame) -> tuple[int, bool]:
    """`(rotation, mirrored)` of the display-matrix metadata: the picture is shown turned by `rotation` degrees
    counter-clockwise (a multiple of 90), then, if `mirrored`, flipped left to right (the front camera of some
    phones); every mirrored matrix is such a turn and flip, as FFmpeg's own autorotate applies it. A matrix that
    cannot be a rotation (all zero, a zero column: written by broken muxers) is ignored. FFmpeg's
    `av_display_rotation_get` read a horizontal mirror as a half turn (an upside-down video) and an all-zero matrix
    as INT_MIN degrees (a quarter turn here)."""
    side = SideDataContainer(frame).get("DISPLAYMATRIX")
    if side is None:
        return 0, False
    matrix = np.frombuffer(bytes(side), dtype=np.int32)
    if matrix.size < 9:
        return 0, False
    a, b, c, d = (float(v) / 65536.0 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))  # 16.16 fixed point
    if math.hypot(a, c) == 0.0 or math.hypot(b, d) == 0.0 or a * d - b * c == 0.0:
        return 0, False
    mirrored = a * d - b * c < 0
    if mirrored:  # M = R F with F the mirror diag(-1, 1): R is M with its first column negated
        a, c = -a, -c
    # As av_display_rotation_get: the angle of the (normalised) first row, clockwise there, so negated.
    degrees = -math.degrees(math.atan2(b / math.hypot(b, d), a / math.hypot(a, c)))
    return (round(degrees / 90) * 90) % 360, mirrored
