"""Offline codec assets for a benchmark's videos: lists the videos of an lmms-eval task (or a folder) and runs
`cv_reader precompute` on them with the model's video geometry (resumable: finished videos are skipped; sharded).

    python -m llava.eval.precompute_videos --task videomme --out_root codec_assets [--model_path CKPT]
        [--num_shards 8 --shard_id 0 --num_workers 4]
    python -m llava.eval.precompute_videos --video_dir /data/videos --out_root codec_assets/mine

Assets go to `<out_root>/<task>/assets/<stem>__<sha1(path relative to the video folder)[:10]>/`; evaluate with
`video_mode=codec_offline,offline_root=<out_root>/<task>` (the plugin finds the key from the video's path).
A task's videos are where lmms-eval unpacks them: `$HF_HOME/<dataset_kwargs.cache_dir>` (spec lmms_eval_plugin.md
section 3); run the benchmark once (or its download) first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

logger = logging.getLogger("llava.eval.precompute_videos")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".wmv", ".3gp")


def hf_home() -> Path:
    """lmms-eval's `HF_HOME` (default `~/.cache/huggingface`)."""
    return Path(os.path.expanduser(os.environ.get("HF_HOME", "~/.cache/huggingface")))


def task_cache_dirs(task: str) -> list[str]:
    """The `dataset_kwargs.cache_dir` values of an lmms-eval task or group (subtasks followed), without importing
    the tasks' Python code (their `!function`s are not resolved)."""
    from lmms_eval import utils
    from lmms_eval.tasks import TaskManager

    index = TaskManager().task_index
    found: list[str] = []
    pending = [task]
    while pending:
        name = pending.pop()
        if name not in index:
            raise KeyError(f"lmms-eval has no task or group {name!r}")
        config = utils.load_yaml_config(index[name]["yaml_path"], mode="simple")
        if index[name].get("type") == "group" or isinstance(config.get("task"), list):
            pending.extend(t if isinstance(t, str) else t["task"] for t in config.get("task", []))
            continue
        cache_dir = (config.get("dataset_kwargs") or {}).get("cache_dir")
        if not cache_dir:
            raise ValueError(f"task {name} has no dataset_kwargs.cache_dir: give its videos with --video_dir")
        if cache_dir not in found:
            found.append(cache_dir)
    return found


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

    folders = [hf_home() / d for d in task_cache_dirs(args.task)] if args.task else [Path(args.video_dir)]
    out = Path(args.out_root) / (args.name or args.task or Path(args.video_dir).resolve().name)
    out.mkdir(parents=True, exist_ok=True)
    geometry = model_geometry(args.model_path)
    status = 0
    for number, folder in enumerate(folders):
        videos = list_videos(folder)
        if not videos:
            raise FileNotFoundError(f"no video files under {folder}")
        listing = out / f"videos_{number}.jsonl"
        listing.write_text("".join(json.dumps({"video": video}) + "\n" for video in videos))
        logger.info("%s: %d videos -> %s (shard %d of %d)", folder, len(videos), out, args.shard_id, args.num_shards)
        command = ["precompute", "--videos_jsonl", str(listing), "--video_root", str(folder), "--out_root", str(out),
                   "--task", args.task or "", "--num_shards", str(args.num_shards), "--shard_id", str(args.shard_id),
                   "--num_workers", str(args.num_workers)]  # fmt: skip
        command += [f"--{key}={value}" for key, value in geometry.items()]
        command += ["--overwrite"] if args.overwrite else []
        status = max(status, cv_reader_main(command))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
