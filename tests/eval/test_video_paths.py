"""On-the-fly codec selection and the offline assets of `cv_reader precompute` give the model the same inputs; every
path is logged and counted; misses are never silent."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from cv_reader.assets import save_jpeg
from cv_reader.cli import main as cv_reader_main
from llava.eval.precompute_videos import main as precompute_main
from llava.eval.video_sources import VideoSources
from llava.model import LlavaOVProcessor
from llava.model.llava_ov.video_inputs import VideoFrames

QUESTION = [{"from": "human", "value": "<video>\nWhich way does the object move?"}]


def _sources(processor: LlavaOVProcessor, mode: str, roots=(), **kwargs) -> VideoSources:
    return VideoSources(mode=mode, offline_roots=roots, num_frames=processor.num_video_frames,
                        square_size=processor.video_square_size, patch_size=processor.video_patch_size,
                        temporal_size=processor.video_temporal_size, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def eval_videos(playground_small) -> list[Path]:
    return sorted((playground_small / "videos").glob("eval_*.mp4"))


@pytest.fixture(scope="module")
def offline_root(tiny_llava, eval_videos, tmp_path_factory) -> Path:
    """Assets of the eval videos via the precompute command, in two shards (the second run resumes nothing)."""
    out = tmp_path_factory.mktemp("codec_assets")
    folder = eval_videos[0].parent
    for shard in ("0", "1"):
        argv = ["--video_dir", str(folder), "--out_root", str(out), "--name", "bench", "--model_path",
                str(tiny_llava), "--num_shards", "2", "--shard_id", shard]  # fmt: skip
        assert precompute_main(argv) == 0
    return out / "bench"


def test_offline_assets_give_the_same_model_inputs_as_on_the_fly(
    tiny_llava, eval_videos, offline_root, caplog, tmp_path
):
    processor = LlavaOVProcessor.from_pretrained(tiny_llava)
    online, offline = _sources(processor, "codec"), _sources(processor, "codec_offline", [offline_root])
    assert len(list((offline_root / "assets").iterdir())) == len(list(eval_videos[0].parent.glob("*.mp4")))
    caplog.set_level(logging.INFO, logger="llava.eval")
    for number, video in enumerate(eval_videos):
        selected = online.resolve(video)
        a = processor.process_conversation(QUESTION, videos=[selected], add_generation_prompt=True)
        b = processor.process_conversation(QUESTION, videos=[offline.resolve(video)], add_generation_prompt=True)
        assert torch.equal(a["input_ids"], b["input_ids"])
        assert torch.equal(a["patch_positions"][0], b["patch_positions"][0])  # same selected patches, same order
        assert a["pixel_values"][0].shape == b["pixel_values"][0].shape
        # The assets are JPEG mosaics (upstream layout): pixels differ only by that encoding. Stored the same way,
        # the on-the-fly mosaics give exactly the offline pixels.
        assert (a["pixel_values"][0] - b["pixel_values"][0]).abs().mean() < 0.05
        paths = [tmp_path / f"{number}_{i}.jpg" for i in range(len(selected.frames))]
        for path, mosaic in zip(paths, selected.frames, strict=True):
            save_jpeg(path, mosaic)
        as_jpeg = VideoFrames(frames=[str(p) for p in paths], positions_thw=selected.positions_thw)
        c = processor.process_conversation(QUESTION, videos=[as_jpeg], add_generation_prompt=True)
        assert torch.equal(c["pixel_values"][0], b["pixel_values"][0])
    assert online.counts == {"codec": len(eval_videos)} and offline.counts == {"codec_offline": len(eval_videos)}
    assert sum("offline codec assets" in r.message for r in caplog.records) == len(eval_videos)
    assert offline.summary() == f"videos: codec_offline {len(eval_videos)}"


def test_upstream_stem_keyed_assets_are_read(tiny_llava, eval_videos, tmp_path):
    processor = LlavaOVProcessor.from_pretrained(tiny_llava)
    video = eval_videos[0]
    cv_reader_main(["precompute", "--videos", str(video), "--out_root", str(tmp_path), "--key_mode", "stem",
                    "--num_images", str(processor.num_video_frames), "--square_size",
                    str(processor.video_square_size), "--patch_size", str(processor.video_patch_size)])  # fmt: skip
    sources = _sources(processor, "codec_offline", [tmp_path])
    directory, how = sources.find_assets(video)
    assert directory == tmp_path / "assets" / video.stem and "stem key" in how


def test_missing_assets_are_logged_or_refused(tiny_llava, eval_videos, tmp_path, caplog):
    processor = LlavaOVProcessor.from_pretrained(tiny_llava)
    (tmp_path / "assets").mkdir()
    sources = _sources(processor, "codec_offline", [tmp_path])
    with caplog.at_level(logging.WARNING, logger="llava.eval"):
        frames = sources.resolve(eval_videos[0])
    assert frames.positions_thw is not None
    assert sources.counts == {"codec_offline_miss_then_codec": 1}
    assert "no offline codec assets" in caplog.text
    with pytest.raises(FileNotFoundError, match="no offline codec assets"):
        _sources(processor, "codec_offline", [tmp_path], on_missing="error").resolve(eval_videos[0])
    with pytest.raises(FileNotFoundError, match="offline_root not found"):
        _sources(processor, "codec_offline", [tmp_path / "nowhere"])
    with pytest.raises(ValueError, match="needs offline_root"):
        _sources(processor, "codec_offline")
