"""Offline codec assets for a benchmark's videos: lists the videos of an lmms-eval task (or a folder) and runs
`cv_reader precompute` on them with the model's video geometry (resumable: finished videos are skipped; sharded).

    python -m llava.eval.precompute_videos --task videomme --out_root codec_assets [--model_path CKPT]
        [--num_shards 8 --shard_id 0 --num_workers 4]
    python -m llava.eval.precompute_videos --video_dir /data/videos --out_root codec_assets/mine

Assets go to `<out_root>/<task>/assets/<stem>__<sha1(path relative to the video folder)[:10]>/`; evaluate with
`video_mode=codec_offline,offline_root=<out_root>/<task>` (the plugin finds the key from the video's path).
A task's videos are listed through the task's own `doc_to_visual` over its evaluation documents (lmms-eval builds the
task exactly as an evaluation does, so every benchmark's layout is handled: videomme's `data/<id>.mp4`, MVBench's
per-subtask folders, TemporalBench's bare paths, ...); a group (mvbench, video_mmmu) lists all its subtasks. The data
must be there (a first evaluation or lmms-eval's download puts it under `$HF_HOME/<cache_dir>`). A document whose
video is missing is logged and counted, not fatal. The listing is written next to the assets (`videos.jsonl`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from tqdm import tqdm

logger = logging.getLogger("llava.eval.precompute_videos")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".wmv", ".3gp")


def _leaf_tasks(task_dict: dict) -> list[Any]:
    """The task objects of lmms-eval's (nested) task dict: groups map to dicts of their subtasks."""
    leaves = []
    for value in task_dict.values():
        leaves += _leaf_tasks(value) if isinstance(value, dict) else [value]
    return leaves


def task_videos(task: str) -> tuple[list[str], int]:
    """(absolute video paths of `task`'s evaluation documents, in order and unique; number of documents whose
    video could not be listed). The task's own `doc_to_visual` finds them."""
    from lmms_eval.tasks import TaskManager, get_task_dict

    from .visuals import normalize_visuals

    manager = TaskManager()
    if task not in manager.all_tasks:
        raise KeyError(f"lmms-eval has no task or group {task!r}")
    videos: dict[str, None] = {}
    failed = 0
    for leaf in _leaf_tasks(get_task_dict([task], manager)):
        name = leaf.config.task
        docs = leaf.eval_docs
        for doc_id, doc in enumerate(tqdm(docs, desc=f"{name}: listing videos", unit="doc")):
            try:
                visuals = normalize_visuals(leaf.doc_to_visual(doc), check_files=False)
            except (Exception, SystemExit) as error:  # noqa: BLE001 (a task's doc_to_visual may exit on a miss)
                failed += 1
                logger.warning("%s doc %d: doc_to_visual failed: %s", name, doc_id, error)
                continue
            for video in visuals.videos:
                if Path(video).is_file():
                    videos.setdefault(os.path.abspath(video), None)
                else:
                    failed += 1
                    logger.warning("%s doc %d: video not found: %s", name, doc_id, video)
    return list(videos), failed


def write_atomic(path: Path, text: str) -> None:
    """`path` written through a temporary file and a rename (a concurrent shard never reads half a listing)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def list_videos(folder: Path) -> list[str]:
    """Video files under `folder`, as sorted paths relative to it."""
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder not found: {folder}")
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def model_geometry(model_path: str | None) -> dict[str, int]:
    """cv_reader geometry from a checkpoint's `processor_config.json` (upstream's 8 x 576 / 16 without one)."""
    geometry = {"num_images": 8, "square_size": 576, "patch_size": 16, "seq_len_frames": 64}
    if model_path:
        config = json.loads((Path(model_path) / "processor_config.json").read_text())
        geometry.update(num_images=config.get("num_video_frames", 8),
                        square_size=config.get("video_square_size", 576),
                        patch_size=config.get("video_patch_size", 16),
                        seq_len_frames=config.get("video_temporal_size", 64))  # fmt: skip
    return geometry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--task", help="lmms-eval task or group name (videos under $HF_HOME/<cache_dir>)")
    source.add_argument("--video_dir", help="a folder of videos")
    parser.add_argument("--out_root", required=True)
    parser.add_argument("--name", help="sub-folder of out_root (default: the task, or the folder's name)")
    parser.add_argument("--model_path", help="checkpoint whose processor_config.json sets the geometry")
    parser.add_argument("--num_shards", type=int, default=1)
    parser.add_argument("--shard_id", type=int, default=0)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="redo finished videos")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from cv_reader.cli import main as cv_reader_main

    out = Path(args.out_root) / (args.name or args.task or Path(args.video_dir).resolve().name)
    out.mkdir(parents=True, exist_ok=True)
    if args.task:
        videos, failed = task_videos(args.task)
        if not videos:
            raise FileNotFoundError(f"task {args.task}: no video file found ({failed} documents without one)")
        # cv_reader keys hash the path relative to --video_root; the plugin tries every ancestor of a video's path,
        # so the common folder of the task's videos is a valid root.
        root = Path(os.path.commonpath([os.path.dirname(video) for video in videos]))
        listing = [os.path.relpath(video, root) for video in videos]
        logger.info("%s: %d videos under %s (%d documents without a video)", args.task, len(videos), root, failed)
    else:
        root = Path(args.video_dir)
        listing, failed = list_videos(root), 0
        if not listing:
            raise FileNotFoundError(f"no video files under {root}")
    listing_path = out / "videos.jsonl"
    write_atomic(listing_path, "".join(json.dumps({"video": video}) + "\n" for video in listing))
    logger.info("%d videos -> %s (shard %d of %d)", len(listing), out, args.shard_id, args.num_shards)
    command = ["precompute", "--videos_jsonl", str(listing_path), "--video_root", str(root), "--out_root", str(out),
               "--task", args.task or "", "--num_shards", str(args.num_shards), "--shard_id", str(args.shard_id),
               "--num_workers", str(args.num_workers)]  # fmt: skip
    command += [f"--{key}={value}" for key, value in model_geometry(args.model_path).items()]
    command += ["--overwrite"] if args.overwrite else []
    status = cv_reader_main(command)
    if failed:
        logger.warning("%s: %d documents had no video to precompute (see the warnings above)", args.task, failed)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
