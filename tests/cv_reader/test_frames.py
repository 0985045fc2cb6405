"""The letterbox RGB path (`RgbScaler`: area-scaled 4:2:0, then RGB) keeps colours and ranges of every input format:
limited and full range (JPEG), 4:4:4, 10-bit, RGB-coded and grey video."""

from __future__ import annotations

import struct

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from cv_reader import read_letterboxed_frames, select_patches
from cv_reader.decode import RgbScaler, frame_orientation, luma_plane, luma_samples, upright_rgb, with_rows
from llava.model.llava_ov.video_inputs import read_uniform_frames

from .synth import moving_object_clip

# (region slice, RGB colour) on a 240x320 frame: flat regions far larger than the 2x2 chroma blocks
REGIONS = [
    ((slice(0, 120), slice(0, 160)), (200, 90, 30)),
    ((slice(0, 120), slice(160, 320)), (20, 60, 220)),
    ((slice(120, 240), slice(0, 160)), (10, 250, 10)),
    ((slice(120, 240), slice(160, 320)), (128, 128, 128)),
]


def _decoded(path, codec: str, pix_fmt: str, images: list[np.ndarray]) -> list[av.VideoFrame]:
    """The frames of `images` (RGB, one size) encoded with `codec` in `pix_fmt`, decoded again."""
    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def _first_frame(path, codec: str, pix_fmt: str) -> av.VideoFrame:
    image = np.zeros((240, 320, 3), np.uint8)
    for (rows, cols), colour in REGIONS:
        image[rows, cols] = colour
    return _decoded(path, codec, pix_fmt, [image, image])[0]


@pytest.mark.parametrize("height", [216, 215])
@pytest.mark.parametrize(
    ("codec", "pix_fmt"),
    [
        ("libx264", "yuv420p"),
        ("mjpeg", "yuvj420p"),
        ("libx264", "yuv444p"),
        ("libx264", "yuv420p10le"),
        ("libx264rgb", "rgb24"),
        ("ffv1", "gray"),
    ],
)
def test_two_pass_rgb_keeps_colours_of_every_format(tmp_path, codec, pix_fmt, height):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    frame = _first_frame(tmp_path / f"{codec}_{pix_fmt}.mkv", codec, pix_fmt)
    ours = RgbScaler()(frame, height=height, width=288).astype(int)
    one_pass = VideoReformatter().reformat(frame, width=288, height=height, format="rgb24", interpolation="AREA")
    one_pass = one_pass.to_ndarray().astype(int)
    assert ours.shape == (height, 288, 3)
    for (rows, cols), colour in REGIONS:
        # region centres in the output (scale 0.9), away from the edges where chroma is shared
        r = (rows.start + rows.stop) * 9 // 20
        c = (cols.start + cols.stop) * 9 // 20
        expected = np.dot([0.299, 0.587, 0.114], colour) if pix_fmt == "gray" else np.array(colour)
        assert np.abs(ours[r, c] - one_pass[r, c]).max() <= 5, (r, c, ours[r, c], one_pass[r, c])
        assert np.abs(ours[r, c] - expected).max() <= 6, (r, c, ours[r, c], colour)


@pytest.mark.parametrize(("codec", "pix_fmt"), [("libx264", "yuv420p"), ("mjpeg", "yuvj420p"), ("libx264", "yuv444p")])
@pytest.mark.parametrize(("height", "width"), [(215, 288), (471, 576), (323, 575)])
def test_odd_heights_take_the_4_2_0_routine(tmp_path, codec, pix_fmt, height, width):
    """An odd-height 4:2:0 picture goes through swscale's generic scaler when converted to RGB (13x slower, and its
    chroma differs from what every even height gets by up to ~40 levels at colour edges); `RgbScaler` converts it
    one repeated row taller instead. Its rows are those of the even-height pictures: the top height-1 rows equal
    the conversion of the same scaled pixels cut to that even height, the last row that of the picture grown."""
    frame = _first_frame(tmp_path / f"{codec}_{pix_fmt}.mkv", codec, pix_fmt)
    ours = RgbScaler()(frame, height=height, width=width)
    small = VideoReformatter().reformat(frame, width=width, height=height, format="yuv420p", interpolation="AREA")

    def to_rgb(picture: av.VideoFrame) -> np.ndarray:
        return VideoReformatter().reformat(picture, format="rgb24", interpolation="AREA").to_ndarray()

    assert ours.shape == (height, width, 3)
    np.testing.assert_array_equal(ours[:-1], to_rgb(with_rows(small, height - 1)))
    np.testing.assert_array_equal(ours[-1], to_rgb(with_rows(small, height + 1))[height - 1])
    generic = to_rgb(small)  # what an odd height got before: the same picture, other chroma at colour edges
    assert np.abs(generic.astype(int) - ours).max() > 8
    assert np.abs(generic.astype(int) - ours).mean() < 3


@pytest.mark.parametrize(
    ("codec", "pix_fmt"),
    [("libx264", "yuv420p10le"), ("libx264rgb", "rgb24"), ("ffv1", "gray16le"), ("libx264", "yuv420p")],
)
def test_luma_of_any_format_with_a_long_lived_reformatter(tmp_path, codec, pix_fmt):
    """`luma_plane` with one reformatter for the stream gives, frame after frame, the bytes of a fresh per-frame
    conversion to grey (formats whose luma is not read in place, here RGB), the luma plane itself (8-bit planar), or
    its top 8 bits (10- and 16-bit planar, read in place by `luma_samples`)."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(4)]
    frames = _decoded(tmp_path / f"{codec}_{pix_fmt}.mkv", codec, pix_fmt, images)
    gray = VideoReformatter()
    assert len(frames) == 4
    for frame in frames:
        ours = luma_plane(frame, gray=gray)
        assert ours.shape == (64, 96) and ours.dtype == np.uint8
        samples, extra = luma_samples(frame, gray=gray)
        assert extra == {"yuv420p10le": 2, "gray16le": 8}.get(pix_fmt, 0)
        if pix_fmt == "yuv420p":
            np.testing.assert_array_equal(ours, frame.to_ndarray()[:64])
        elif extra:
            assert samples.dtype == np.uint16 and np.shares_memory(samples, np.frombuffer(frame.planes[0], np.uint8))
            np.testing.assert_array_equal(samples, frame.to_ndarray()[:64])
            np.testing.assert_array_equal(ours, frame.to_ndarray()[:64] >> extra)
        else:
            np.testing.assert_array_equal(ours, frame.to_ndarray(format="gray"))


@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize(("height", "width"), [(216, 288), (215, 288), (288, 215)])
def test_turned_canvases_are_the_turned_rgb(tmp_path, rotation, height, width):
    """`RgbScaler` turns 4:2:0 planes before the RGB conversion (a turn of RGB pixels is 16x slower): the same
    picture as turning the RGB of the coded orientation, bit for bit where the turned sizes are even (the 2x2
    chroma blocks stay whole), and the same colours otherwise."""
    frame = _first_frame(tmp_path / "turn.mkv", "libx264", "yuv420p")
    ours = RgbScaler()(frame, height=height, width=width, rotation=rotation)
    coded = (width, height) if rotation % 180 else (height, width)
    reference = np.rot90(RgbScaler()(frame, height=coded[0], width=coded[1]), rotation // 90)
    assert ours.shape == reference.shape == (height, width, 3)
    if height % 2 == 0 and width % 2 == 0:
        np.testing.assert_array_equal(ours, reference)
    else:
        assert np.abs(ours.astype(int) - reference).mean() < 3
    # the coded top-left region (colour 0) ends where np.rot90 puts the top-left corner
    corner = {90: (-1, 0), 180: (-1, -1), 270: (0, -1)}[rotation]
    assert np.abs(ours[corner].astype(int) - REGIONS[0][1]).max() <= 6


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize(
    ("codec", "pix_fmt"),
    [("libx264", "yuv420p"), ("mjpeg", "yuvj420p"), ("libx264", "yuv444p"), ("libx264", "yuv422p"), ("ffv1", "gray")],
)
def test_upright_frames_are_the_turned_rgb(tmp_path, codec, pix_fmt, rotation):
    """`upright_rgb` (the uniform frames of the model's video input) turns the planes where the format allows it,
    and its pixels are exactly those of turning the frame's RGB."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    frame = _first_frame(tmp_path / f"{codec}_{pix_fmt}.mkv", codec, pix_fmt)
    expected = np.rot90(frame.to_ndarray(format="rgb24"), rotation // 90)
    ours = upright_rgb(frame, rotation=rotation)
    assert ours.flags.c_contiguous
    np.testing.assert_array_equal(ours, expected)


def _with_display_matrix(path, matrix: tuple[int, ...]) -> None:
    """Overwrite the display matrix of every `tkhd` box of an mp4 (9 big-endian int32, 16.16 and 2.30 fixed point),
    as a muxer would have written it."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    while at >= 0:
        offset = at - 4 + (48 if data[at + 4] == 0 else 60)  # after the box header and the version-0/1 fields
        data[offset : offset + 36] = struct.pack(">9i", *matrix)
        at = data.find(b"tkhd", at + 4)
    path.write_bytes(bytes(data))


ONE = 1 << 16
W = 1 << 30


@pytest.mark.parametrize(
    ("matrix", "rotation", "mirror"),
    [
        ((0, -ONE, 0, ONE, 0, 0, 0, 0, W), 90, False),  # as FFmpeg writes -display_rotation 90
        ((-ONE, 0, 0, 0, -ONE, 0, 0, 0, W), 180, False),
        ((-ONE, 0, 0, 0, ONE, 0, 0, 0, W), 0, True),  # a horizontal mirror: not a half turn
        ((ONE, 0, 0, 0, -ONE, 0, 0, 0, W), 180, True),  # a vertical mirror: a half turn, then a horizontal one
        ((0, ONE, 0, ONE, 0, 0, 0, 0, W), 270, True),  # a transpose (FFmpeg: cclock_flip)
        ((0, -ONE, 0, -ONE, 0, 0, 0, 0, W), 90, True),  # the other diagonal (FFmpeg: clock_flip)
        ((0,) * 9, 0, False),  # all zero (a broken muxer): no rotation, not INT_MIN degrees
        ((ONE, 0, 0, 0, 0, 0, 0, 0, W), 0, False),  # a zero column
    ],
)
def test_display_matrices_that_are_not_rotations(tmp_path, matrix, rotation, mirror):
    path = tmp_path / "clip.mp4"
    _decoded(path, "libx264", "yuv420p", [np.zeros((48, 64, 3), np.uint8)] * 2)
    _with_display_matrix(path, matrix)
    with av.open(str(path)) as container:
        assert frame_orientation(next(container.decode(video=0))) == (rotation, mirror)
    selection = select_patches(path, num_frames=2, num_images=1, square_size=64)
    assert (selection.meta["rotation"], selection.meta["mirrored"]) == (rotation, mirror)


@pytest.mark.parametrize("turn", [0, 90])
def test_a_mirrored_clip_is_shown_mirrored(tmp_path, turn):
    """A display matrix that mirrors (turned or not): the canvases, the stage-2 frames, the uniform frames and the
    cell scores are those of the same clip without it, flipped left to right after the turn (they were turned a
    half turn instead: an upside-down video)."""
    rotations = {0: (ONE, 0, 0, 0, ONE, 0, 0, 0, W), 90: (0, -ONE, 0, ONE, 0, 0, 0, 0, W)}
    mirrors = {0: (-ONE, 0, 0, 0, ONE, 0, 0, 0, W), 90: (0, -ONE, 0, -ONE, 0, 0, 0, 0, W)}  # the turn, then a flip
    # 128x72: block matching's whole blocks stop 8 px short of the frame's 72 rows, so once turned and flipped its
    # maps start 8 px in (`cell_scores`' origin: with the map placed at the corner, the first frame's scores moved by
    # up to 60). Both letterbox pads are 21: the mirrored canvas is the mirror of the plain one.
    clip = moving_object_clip(tmp_path / "plain.mp4", num_frames=24, height=72, width=128, seed=3).path
    flipped = tmp_path / "mirrored.mp4"
    flipped.write_bytes(clip.read_bytes())
    _with_display_matrix(clip, rotations[turn])
    _with_display_matrix(flipped, mirrors[turn])
    kwargs = dict(num_frames=8, num_images=2, square_size=96, patch_size=16)
    plain, mirrored = select_patches(clip, **kwargs), select_patches(flipped, **kwargs)
    assert mirrored.meta["mirrored"] and not plain.meta["mirrored"]
    assert mirrored.meta["rotation"] == plain.meta["rotation"] == (90 if turn else 0)
    np.testing.assert_array_equal(mirrored.sampled_frames(), plain.sampled_frames()[:, :, ::-1])
    np.testing.assert_allclose(mirrored.scores, plain.scores[:, :, ::-1], rtol=1e-5, atol=1e-6)
    stage2, _ = read_letterboxed_frames(flipped, mirrored.frame_ids, square_size=96)
    np.testing.assert_array_equal(stage2, mirrored.sampled_frames()[: len(stage2)])
    uniform = [read_uniform_frames(path, num_frames=2) for path in (clip, flipped)]
    np.testing.assert_array_equal(uniform[1][1], uniform[0][1][:, ::-1])
