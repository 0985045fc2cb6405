"""The letterbox RGB path (`RgbScaler`: area-scaled 4:2:0, then RGB) keeps colours and ranges of every input format:
limited and full range (JPEG), 4:4:4, 10-bit, RGB-coded and grey video."""

from __future__ import annotations

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from cv_reader.decode import RgbScaler

# (region slice, RGB colour) on a 240x320 frame: flat regions far larger than the 2x2 chroma blocks
REGIONS = [
    ((slice(0, 120), slice(0, 160)), (200, 90, 30)),
    ((slice(0, 120), slice(160, 320)), (20, 60, 220)),
    ((slice(120, 240), slice(0, 160)), (10, 250, 10)),
    ((slice(120, 240), slice(160, 320)), (128, 128, 128)),
]


def _first_frame(path, codec: str, pix_fmt: str) -> av.VideoFrame:
    image = np.zeros((240, 320, 3), np.uint8)
    for (rows, cols), colour in REGIONS:
        image[rows, cols] = colour
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, pix_fmt
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        return next(container.decode(video=0))


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
def test_two_pass_rgb_keeps_colours_of_every_format(tmp_path, codec, pix_fmt):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    frame = _first_frame(tmp_path / f"{codec}_{pix_fmt}.mkv", codec, pix_fmt)
    ours = RgbScaler()(frame, height=216, width=288).astype(int)
    one_pass = VideoReformatter().reformat(frame, width=288, height=216, format="rgb24", interpolation="AREA")
    one_pass = one_pass.to_ndarray().astype(int)
    assert ours.shape == (216, 288, 3)
    for (rows, cols), colour in REGIONS:
        # region centres in the output (scale 0.9), away from the edges where chroma is shared
        r = (rows.start + rows.stop) * 9 // 20
        c = (cols.start + cols.stop) * 9 // 20
        expected = np.dot([0.299, 0.587, 0.114], colour) if pix_fmt == "gray" else np.array(colour)
        assert np.abs(ours[r, c] - one_pass[r, c]).max() <= 5, (r, c, ours[r, c], one_pass[r, c])
        assert np.abs(ours[r, c] - expected).max() <= 6, (r, c, ours[r, c], colour)
