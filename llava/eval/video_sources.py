"""Where each evaluation video comes from: offline codec assets, on-the-fly codec selection, or uniform frames.

Spec lmms_eval_plugin.md section 10.3 and cv_reader's eval asset layout (`assets/<key>/mosaic_000..N.jpg`,
`positions_thw.npy`, ..., `meta.json` written last). Every video logs the path it took and `VideoSources.counts`
keeps the totals, so a run that quietly fell back to another path shows it (upstream's fallbacks were silent).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from cv_reader.assets import asset_key
from llava.model.llava_ov.video_inputs import VideoFrames, read_uniform_frames, select_codec_video

logger = logging.getLogger(__name__)

VideoMode = Literal["codec", "codec_offline", "uniform"]
VIDEO_MODES: tuple[str, ...] = ("codec", "codec_offline", "uniform")


def candidate_keys(video: str | Path) -> Iterator[tuple[str, str]]:
    """(key, how) pairs under which `cv_reader precompute` may have stored `video`, most specific first.

    `--key_mode path` keys hash the path relative to the `--video_root` of the precompute run, which the evaluator
    does not know: try the path as written, then relative to each ancestor folder from the file system root down.
    The upstream stem key (`--key_mode stem`, may collide) comes last.
    """
    video = str(video)
    yield asset_key(video), "path key"
    absolute = Path(os.path.abspath(video))
    for root in reversed(absolute.parents):
        yield asset_key(absolute, root), f"path key relative to {root}"
    yield absolute.stem, "stem key (upstream layout)"


class VideoSources:
    """Turns a video file path into a processor video input, following `mode`.

    Args:
        mode: "codec" (cv_reader selection now), "codec_offline" (precomputed assets; a miss runs the selection now
            and is logged as a warning, or raises with `on_missing="error"`), "uniform" (evenly spaced frames).
        offline_roots: precompute output folders (each holding `assets/`, or the `assets` folder itself).
        num_frames: mosaics / frames per video; square_size, patch_size, temporal_size: cv_reader geometry.
    """

    def __init__(
        self,
        *,
        mode: str,
        offline_roots: Sequence[str | Path] = (),
        num_frames: int,
        square_size: int,
        patch_size: int,
        temporal_size: int = 64,
        on_missing: str = "codec",
    ) -> None:
        if mode not in VIDEO_MODES:
            raise ValueError(f"video_mode must be one of {VIDEO_MODES}, got {mode!r}")
        if on_missing not in ("codec", "error"):
            raise ValueError(f"on_missing must be 'codec' or 'error', got {on_missing!r}")
        self.mode = mode
        self.asset_dirs = [Path(root) / "assets" if (Path(root) / "assets").is_dir() else Path(root)
                           for root in offline_roots]  # fmt: skip
        missing = [str(root) for root in self.asset_dirs if not root.is_dir()]
        if missing:
            raise FileNotFoundError(f"offline_root not found: {', '.join(missing)}")
        if mode == "codec_offline" and not self.asset_dirs:
            raise ValueError("video_mode=codec_offline needs offline_root (a cv_reader precompute output folder)")
        self.num_frames = num_frames
        self.square_size = square_size
        self.patch_size = patch_size
        self.temporal_size = temporal_size
        self.on_missing = on_missing
        self.counts: Counter[str] = Counter()
        # Multiple choice asks one loglikelihood per answer of the same video, back to back: reuse the last few.
        self._recent: OrderedDict[str, VideoFrames] = OrderedDict()
        self.cache_size = 8

    def find_assets(self, video: str | Path) -> tuple[Path, str] | None:
        """(asset folder, key description) of the first complete asset set of `video`, or None."""
        for key, how in candidate_keys(video):
            for assets in self.asset_dirs:
                directory = assets / key
                if not directory.is_dir():
                    continue
                if (directory / "meta.json").is_file() and (directory / "positions_thw.npy").is_file():
                    return directory, how
                error = directory / "error.json"
                reason = json.loads(error.read_text()).get("error") if error.is_file() else "meta.json missing"
                logger.warning("video %s: incomplete offline assets in %s (%s)", video, directory, reason)
        return None

    def load_assets(self, directory: Path) -> VideoFrames:
        """The mosaics and positions of one asset folder (frame count checked against the model's)."""
        mosaics = sorted(directory.glob("mosaic_*.jpg"))
        if not mosaics:
            raise FileNotFoundError(f"{directory}: no mosaic_*.jpg")
        if len(mosaics) != self.num_frames:
            logger.warning("%s: %d mosaics, the model was configured for %d", directory, len(mosaics), self.num_frames)
        return VideoFrames(frames=[str(path) for path in mosaics], positions_thw=directory / "positions_thw.npy")

    def select_now(self, video: str | Path) -> VideoFrames:
        """On-the-fly codec selection (cv_reader) with the model's geometry."""
        return select_codec_video(video, num_images=self.num_frames, square_size=self.square_size,
                                  patch_size=self.patch_size, num_frames=self.temporal_size)  # fmt: skip

    def resolve(self, video: str | Path) -> VideoFrames:
        """The processor input of one video file; logs and counts the path taken (a video asked again while it is
        among the last `cache_size` is reused, neither logged nor counted again)."""
        cache_key = os.path.abspath(video)
        if cache_key in self._recent:
            self._recent.move_to_end(cache_key)
            return self._recent[cache_key]
        frames = self._resolve(video)
        self._recent[cache_key] = frames
        if len(self._recent) > self.cache_size:
            self._recent.popitem(last=False)
        return frames

    def _resolve(self, video: str | Path) -> VideoFrames:
        if not Path(video).is_file():
            raise FileNotFoundError(f"video not found: {video}")
        if self.mode == "uniform":
            self.counts["uniform"] += 1
            logger.info("video %s: %d uniform frames", video, self.num_frames)
            return VideoFrames(frames=read_uniform_frames(video, num_frames=self.num_frames))
        if self.mode == "codec_offline":
            found = self.find_assets(video)
            if found is not None:
                directory, how = found
                self.counts["codec_offline"] += 1
                logger.info("video %s: offline codec assets %s (%s)", video, directory, how)
                return self.load_assets(directory)
            if self.on_missing == "error":
                raise FileNotFoundError(f"video {video}: no offline codec assets under {self.asset_dirs}")
            self.counts["codec_offline_miss_then_codec"] += 1
            logger.warning("video %s: no offline codec assets under %s, running codec selection now", video,
                           [str(d) for d in self.asset_dirs])  # fmt: skip
            return self.select_now(video)
        self.counts["codec"] += 1
        logger.info("video %s: codec selection on the fly", video)
        return self.select_now(video)

    def summary(self) -> str:
        """One line with the count of each video path taken so far."""
        if not self.counts:
            return "videos: none"
        return "videos: " + ", ".join(f"{name} {count}" for name, count in sorted(self.counts.items()))


__all__ = ["VIDEO_MODES", "VideoSources", "candidate_keys"]
