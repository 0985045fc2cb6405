"""Data start-up at real scale: a synthetic manifest in the upstream layout, scanned the first time (no cache) and
the second time (cache), and the packed-row fill ratio of token-budget batching, side by side in one run.

    python benchmarks/data_startup.py [--samples 1540000] [--root /tmp/llava_data_startup] [--budget 16384]

Layout (the mission's mix, spec llava_model_and_training.md 5.5): 48% LLaVA-OneVision image samples
(`{"id", "image": "images/x.jpg", "conversations"}`) and 52% LLaVA-Video codec samples (8 `<image>` lines, 8 mosaic
paths, `positions_thw.npy` int32 [10368, 3]). To keep the disk small, `--distinct-media` folders of real files are
written and the samples cycle through them (every sample still has its own path string, and the scan still reads its
own `.npy` header: nothing is shared in the measurement). Conversations have 1-5 QA turns of varied length.

Start-up = the manifest index (`load_manifest`) + `LlavaOVDataset.prepare()` (validation + costs; cache under
ROOT/cache). Fill ratio: tokens / budget of the rows `TokenBudgetBatchSampler` packs. Grouping quality: on a random
subset, rows packed by estimated cost are recomputed with the exact (tokenised) costs, with the rows that overflow.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import PIL.Image

from llava.atomic_io import atomic_path
from llava.data import LlavaOVDataset, TokenBudgetBatchSampler, load_manifest
from llava.data.scan import exact_cost
from llava.model import LlavaOVProcessor
from llava.model.llava_ov.chat_format import frame_lines
from llava.playground.tiny_checkpoint import build_tiny_checkpoint

try:
    import orjson

    def _dumps(value: object) -> bytes:
        return orjson.dumps(value)
except ImportError:  # pragma: no cover - orjson is optional
    import json

    def _dumps(value: object) -> bytes:
        return json.dumps(value).encode()


logger = logging.getLogger("benchmarks.data_startup")
_WORDS = (
    "the a red blue green square circle moves left right up down slowly quickly across frame video image person "
    "holds cup table kitchen outside street car dog runs jumps what which where when how why is are does do there "
    "background foreground scene camera pans zooms object objects colour shape small large near far"
).split()


def build_manifest(root: Path, *, samples: int, distinct_media: int, seed: int = 0) -> Path:
    """ROOT/train.jsonl (+ ROOT/images, ROOT/codec); returns the manifest path. Reused when already built."""
    path = root / f"train_{samples}.jsonl"
    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for index in range(distinct_media):
        image = root / "images" / f"{index:06d}.jpg"
        if not image.is_file():
            size = (int(rng.integers(200, 1200)), int(rng.integers(200, 1200)))
            PIL.Image.new("RGB", size, (index % 255, 90, 160)).save(image, quality=80)
        folder = root / "codec" / f"{index:06d}"
        if not (folder / "positions_thw.npy").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            mosaic = PIL.Image.new("RGB", (576, 576), (40, index % 255, 90))
            for frame in range(8):
                mosaic.save(folder / f"mosaic_{frame}.jpg", quality=80)
            positions = np.stack(
                [rng.integers(0, 64, 10368), rng.integers(0, 36, 10368), rng.integers(0, 36, 10368)], axis=1
            )
            np.save(folder / "positions_thw.npy", positions.astype(np.int32))
    # Pools of texts picked per sample (varied lengths: 3-240 words per answer, 1-5 QA turns).
    answers = [" ".join(rng.choice(_WORDS, size=int(rng.integers(3, 240)))) for _ in range(997)]
    questions = [" ".join(rng.choice(_WORDS, size=int(rng.integers(4, 16)))) + "?" for _ in range(101)]
    num_turns = rng.integers(1, 6, size=samples)
    block = frame_lines(8)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        for index in range(samples):
            turns = []
            for turn in range(int(num_turns[index])):
                turns.append({"from": "human", "value": questions[(index * 7 + turn) % 101]})
                turns.append({"from": "gpt", "value": answers[(index * 13 + turn * 5) % 997]})
            media = index % distinct_media
            if index % 100 < 48:
                turns[0]["value"] = "<image>\n" + turns[0]["value"]
                sample = {"id": f"ov_{index}", "image": f"images/{media:06d}.jpg", "conversations": turns}
            else:
                turns[0]["value"] = block + "\n" + turns[0]["value"]
                sample = {
                    "id": f"video_{index}",
                    "conversations": turns,
                    "image": [f"codec/{media:06d}/mosaic_{frame}.jpg" for frame in range(8)],
                    "positions_thw": f"codec/{media:06d}/positions_thw.npy",
                }
            handle.write(_dumps(sample) + b"\n")
    return path


def start_up(manifest_path: Path, processor: LlavaOVProcessor, *, cache: Path, max_length: int) -> tuple:
    """(wall seconds of the index, wall seconds of prepare, CPU seconds of both incl. workers, dataset)."""
    os.environ["LLAVA_DATA_CACHE"] = str(cache)
    cpu = _cpu_seconds()
    began = time.perf_counter()
    manifest = load_manifest(manifest_path)
    indexed = time.perf_counter()
    dataset = LlavaOVDataset(manifest, processor, max_length=max_length)
    dataset.prepare(progress=False)
    return indexed - began, time.perf_counter() - indexed, _cpu_seconds() - cpu, dataset


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the scan's worker processes)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def packed_rows(costs: np.ndarray, budget: int) -> list[list[int]]:
    """The rows the training sampler packs (`TokenBudgetBatchSampler`, one rank) for these costs."""
    return list(TokenBudgetBatchSampler(costs, max_tokens=budget, seed=0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1_540_000)
    parser.add_argument("--root", type=Path, default=Path("/tmp/llava_data_startup"))
    parser.add_argument("--distinct-media", type=int, default=256)
    parser.add_argument("--budget", type=int, nargs="+", default=[16384, 32768], help="tokens per packed row")
    parser.add_argument("--max-length", type=int, default=16384)
    parser.add_argument("--exact-subset", type=int, default=2000, help="samples tokenised to grade the estimate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = args.root
    root.mkdir(parents=True, exist_ok=True)
    checkpoint = root / "tiny"
    if not (checkpoint / "config.json").is_file():
        build_tiny_checkpoint(checkpoint)
    processor = LlavaOVProcessor.from_pretrained(checkpoint)
    began = time.perf_counter()
    manifest_path = build_manifest(root, samples=args.samples, distinct_media=args.distinct_media)
    print(f"manifest: {manifest_path} ({args.samples} samples, built/reused in {time.perf_counter() - began:.1f} s)")

    cache = root / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    first_index, first_scan, first_cpu, dataset = start_up(
        manifest_path, processor, cache=cache, max_length=args.max_length
    )
    second_index, second_scan, second_cpu, _ = start_up(
        manifest_path, processor, cache=cache, max_length=args.max_length
    )
    print(f"{'':28s}{'first start':>14s}{'second start':>14s}")
    print(f"{'index (s)':28s}{first_index:14.2f}{second_index:14.2f}")
    print(f"{'validation + costs (s)':28s}{first_scan:14.2f}{second_scan:14.2f}")
    print(f"{'total wall (s)':28s}{first_index + first_scan:14.2f}{second_index + second_scan:14.2f}")
    print(f"{'total CPU, all processes (s)':28s}{first_cpu:14.2f}{second_cpu:14.2f}")
    scan = dataset.scan
    print(f"workers: {len(os.sched_getaffinity(0))}; bad samples: {len(scan.bad)}; "
          f"text estimate mean |error| on held-out calibration samples: {100 * scan.estimate_error:.2f}%")  # fmt: skip

    costs = dataset.estimated_costs()
    for budget in args.budget:
        rows = packed_rows(costs, budget)
        fill = costs.sum() / (len(rows) * budget)
        print(
            f"packed rows at {budget} tokens (estimated costs, all samples): {len(rows)} rows, fill {100 * fill:.1f}%"
        )

    rng = np.random.default_rng(1)
    subset = np.sort(rng.choice(len(dataset), size=min(args.exact_subset, len(dataset)), replace=False))
    exact = np.asarray([exact_cost(dataset.manifest, processor, int(i)) for i in subset])
    estimated = costs[subset]
    error = 100 * np.mean(np.abs(estimated - exact) / exact)
    print(f"grouping quality on {len(subset)} random samples: cost estimate mean |error| {error:.2f}%")
    for budget in args.budget:
        rows = packed_rows(estimated, budget)
        totals = [int(exact[row].sum()) for row in rows]
        overflow = sum(total > budget and len(row) > 1 for total, row in zip(totals, rows, strict=True))
        exact_rows = packed_rows(exact, budget)
        print(
            f"  budget {budget}: rows packed by estimated cost are {100 * sum(totals) / (len(rows) * budget):.1f}% "
            f"full in exact tokens ({overflow} of {len(rows)} over the budget); packed by exact cost "
            f"{100 * exact.sum() / (len(exact_rows) * budget):.1f}%"
        )


if __name__ == "__main__":
    main()
