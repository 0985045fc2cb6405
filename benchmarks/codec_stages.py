"""Where the time of `cv_reader.select_patches` + mosaics goes, stage by stage, as multiples of a plain PyAV decode
of the same clip.

    python benchmarks/codec_stages.py clip.mp4 [more.mp4 ...] [--runs 5]

The helper threads run inline (every stage is timed on one thread, so the stages add up to the serial cost; the
pipeline overlaps them on two threads), each stage is wrapped with a timer, and the plain decode runs before each
call in the same process. Medians over `--runs`. Energy sub-stages are indented (they are part of "energy"). The
last line holds the ratios to the plain decode.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Compressed_Video_Reader"))

from cv_reader import pipeline  # noqa: E402

ENERGY_PARTS = ("mc_residual", "motion_fields", "compensate_motion", "cell_scores", "normalise_batch", "frame_motion")


class InlineExecutor:
    """Runs each submitted job at once on the caller's thread (stands in for the pipeline's helper threads)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, *args, **kwargs) -> None:
        pass


def instrument(spent: dict[str, float]) -> None:
    """Wrap the pipeline's stages with timers adding to `spent` (seconds per stage)."""

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return wrapper

    def timed_iter(fn: Callable) -> Callable:
        def wrapper(*args, **kwargs) -> Iterator:
            frames = fn(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(frames)
                except StopIteration:
                    return
                finally:
                    spent["decode"] += time.perf_counter() - started
                yield item

        return wrapper

    pipeline.ThreadPoolExecutor = InlineExecutor
    session = pipeline._Session
    session.finish = timed("energy", session.finish)
    session._work_luma = timed("work luma", session._work_luma)
    session._store_canvas = timed("RGB letterbox", session._store_canvas)
    pipeline.motion_records = timed("motion records", pipeline.motion_records)
    pipeline.probe_video = timed("probe", pipeline.probe_video)
    pipeline.select_topk = timed("top-K", pipeline.select_topk)
    pipeline.iter_indexed_frames = timed_iter(pipeline.iter_indexed_frames)
    for name in ENERGY_PARTS:
        setattr(pipeline, name, timed("  " + name, getattr(pipeline, name)))


def plain_decode(path: Path) -> float:
    started = time.perf_counter()
    with av.open(str(path)) as container:
        for _ in container.decode(video=0):
            pass
    return time.perf_counter() - started


def profile(path: Path, *, runs: int, spent: dict[str, float]) -> dict:
    """Print the median time of each stage over `runs` calls (`spent`: the dict `instrument` adds to); returns the
    ratios to the plain decode."""
    per_run: list[dict[str, float]] = []
    decodes, totals = [], []
    for _ in range(runs):
        decodes.append(plain_decode(path))
        spent.clear()
        started = time.perf_counter()
        selection = pipeline.select_patches(path)
        mosaics_started = time.perf_counter()
        selection.mosaics()
        spent["mosaics"] = time.perf_counter() - mosaics_started
        totals.append(time.perf_counter() - started)
        per_run.append(dict(spent))
    decode, total = float(np.median(decodes)), float(np.median(totals))
    print(
        f"{path.name}: plain decode {decode * 1e3:.1f} ms; select + mosaics, serial, {total * 1e3:.1f} ms "
        f"({total / decode:.2f}x)"
    )
    names = sorted({k for run in per_run for k in run}, key=lambda k: -np.median([r.get(k, 0.0) for r in per_run]))
    ratios = {"clip": path.name, "serial_vs_decode": round(total / decode, 2)}
    for name in names:
        value = float(np.median([run.get(name, 0.0) for run in per_run]))
        print(f"  {name:22s} {value * 1e3:8.1f} ms {value / decode:6.2f}x")
        ratios[name.strip()] = round(value / decode, 3)
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    spent: dict[str, float] = defaultdict(float)
    instrument(spent)
    ratios = [profile(clip, runs=args.runs, spent=spent) for clip in args.clips]
    print("RATIOS " + json.dumps(ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
