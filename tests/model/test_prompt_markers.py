"""The marker rules have one owner (`chat_format`): the codec JSONL writer (`cv_reader.assets`, which cannot import
llava) writes the same frame lines, and the data pipeline reads them back as one `<video>`."""

from __future__ import annotations

import pytest

from cv_reader import assets
from llava.model.llava_ov.chat_format import (
    IMAGE_MARKER,
    VIDEO_MARKER,
    collapse_frame_lines,
    count_markers,
    expand_video_markers,
    frame_lines,
    marker_prefix,
    strip_markers,
)


@pytest.mark.parametrize("num_frames", [1, 4, 8, 16])
def test_cv_reader_writes_the_frame_lines_llava_reads(num_frames):
    assert assets.IMAGE_TOKEN == IMAGE_MARKER and assets.VIDEO_TOKEN == VIDEO_MARKER
    assert assets.frame_lines(num_frames) == frame_lines(num_frames)
    written = assets.rewrite_conversations(
        [{"from": "human", "value": f"{VIDEO_MARKER}\nWhat moves?"}, {"from": "gpt", "value": "A ball."}], num_frames
    )
    assert count_markers(written[0]["value"]) == (num_frames, 0)
    assert collapse_frame_lines(written[0]["value"], num_frames=num_frames) == f"{VIDEO_MARKER}\nWhat moves?"


def test_expand_and_collapse_are_inverse():
    text = f"{VIDEO_MARKER}\nthen {IMAGE_MARKER}\nand {VIDEO_MARKER}\nq"
    expanded = expand_video_markers(text, [3, 2])
    assert expanded == f"{frame_lines(3)}\nthen {IMAGE_MARKER}\nand {frame_lines(2)}\nq"
    assert count_markers(expanded) == (6, 0)
    assert collapse_frame_lines(frame_lines(4) + "\nq", num_frames=4) == f"{VIDEO_MARKER}\nq"
    # Another frame count is not this video.
    assert collapse_frame_lines(frame_lines(5) + "\nq", num_frames=4) is None
    assert collapse_frame_lines("no markers", num_frames=4) is None
    with pytest.raises(ValueError, match="2 <video> markers for 1 videos"):
        expand_video_markers(f"{VIDEO_MARKER}{VIDEO_MARKER}", [3])
    with pytest.raises(ValueError, match="at least one frame"):
        frame_lines(0)


def test_prefix_and_strip():
    assert marker_prefix(num_images=2, num_videos=1) == f"{VIDEO_MARKER}\n{IMAGE_MARKER}\n{IMAGE_MARKER}\n"
    assert marker_prefix() == ""
    assert strip_markers(marker_prefix(num_images=1, num_videos=1) + "q") == "\n\nq"
