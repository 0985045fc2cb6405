"""Command line: `python -m cv_reader {stage1,stage2,pack,precompute,visualize}` (upstream flags and file names,
spec 7-9). Batch commands run a process pool over videos, shard with `--num_shards/--shard_id`, skip finished work,
write atomically, log each failure with its reason and go on, and print a summary at the end."""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import assets
from .frames import read_letterboxed_frames
from .packing import pack_mosaics
from .pipeline import select_patches
from .saliency import EnergyConfig
from .selection import positions_from_visidx

logger = logging.getLogger("cv_reader")


# ------------------------------------------------------------------------------------------------ inputs
def load_dataset(path: str | Path) -> list[dict]:
    """Rows of a dataset JSON (list) or JSONL file, each with `_row_idx` (kept if present, else the line index)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl" or not text.lstrip().startswith("["):
        rows = []
        for n, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{n + 1}: invalid JSON ({err})") from err
    else:
        rows = json.loads(text)
    for n, row in enumerate(rows):
        row.setdefault("_row_idx", n)
    return rows


def split_roots(values: list[str] | None) -> list[str]:
    """`--video_root` values, each possibly `os.pathsep`-separated (several roots)."""
    out: list[str] = []
    for value in values or []:
        out.extend(v for v in value.split(os.pathsep) if v)
    return out


def resolve_video(video: str, roots: list[str], base: Path | None) -> str:
    """Absolute paths as they are; relative ones under the first root (then the dataset folder) where they exist."""
    if os.path.isabs(video):
        return video
    for root in [*roots, *([str(base)] if base else [])]:
        candidate = os.path.join(root, video)
        if os.path.exists(candidate):
            return candidate
    return os.path.join(roots[0], video) if roots else video


def in_shard(key: str, num_shards: int, shard_id: int) -> bool:
    """Upstream sharding: `int(sha1(key)[:8], 16) % num_shards == shard_id`."""
    return num_shards <= 1 or int(assets.sha1_hex(key)[:8], 16) % num_shards == shard_id


# ------------------------------------------------------------------------------------------------ pool
def run_jobs(fn: Callable[[dict], dict], jobs: list[dict], num_workers: int, desc: str) -> Iterator[dict]:
    """Run `fn(job)` for each job (in a spawn process pool when num_workers > 1), yielding results as they finish.
    `fn` must catch its own exceptions and report them in the result."""
    bar = tqdm(total=len(jobs), desc=desc, unit="video", dynamic_ncols=True, disable=None)
    try:
        if num_workers <= 1:
            for job in jobs:
                yield fn(job)
                bar.update()
            return
        ctx = multiprocessing.get_context("spawn")
        # spawn: no fork of a process that holds decoder threads; parallelism is across videos (spec 11).
        with ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx) as pool:
            futures = {pool.submit(fn, job): job for job in jobs}
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as err:  # a worker process died (e.g. a decoder crash): report, go on
                    result = {"status": "failed", "error": repr(err), "traceback": "", "job": futures[future]}
                yield result
                bar.update()
    finally:
        bar.close()


def run_guarded(work: Callable[[dict], dict], job: dict) -> dict:
    """Runs one job and never raises (the process-pool entry point, bound with `functools.partial`): a failure is
    reported with its reason, a finished sample of a resumed run as skipped."""
    try:
        result = {"status": "ok", **work(job)}
    except Exception as err:  # a worker never takes the run down: the failure is reported with its reason
        return {"status": "failed", "error": repr(err), "traceback": traceback.format_exc(), "job": job}
    if result.get("skipped"):
        result["status"] = "skipped"
    result.setdefault("job", job)
    return result


def _summary(name: str, results: Iterable[dict], started: float) -> dict[str, int]:
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    for r in results:
        counts[r.get("status", "failed")] = counts.get(r.get("status", "failed"), 0) + 1
    print(f"[cv_reader {name}] {counts['ok']} done, {counts['skipped']} skipped (already done), "
          f"{counts['failed']} failed in {time.perf_counter() - started:.1f} s")
    return counts


def _energy_from_args(args: argparse.Namespace) -> EnergyConfig:
    return EnergyConfig.upstream() if getattr(args, "energy", "clean") == "upstream" else EnergyConfig()


# ------------------------------------------------------------------------------------------------ stage 1
def _stage1_work(job: dict) -> dict:
    prefix = Path(job["prefix"])
    files = assets.stage1_paths(prefix)
    if not job["overwrite"] and all(p.is_file() for p in files.values()):
        return {"skipped": True}
    sel = select_patches(job["path"], num_frames=job["T"], num_images=job["keep_frames_equiv"],
                         square_size=job["square_size"], patch_size=job["patch_size"],
                         keep_first_full_frame=job["keep_first_full_frame"], budget=job["budget"],
                         sample_start_offset=job["sample_start_offset"], energy=job["energy"], keep_pixels=False)
    assets.save_npy(files["visidx_thw.npy"], sel.visidx_thw)
    assets.save_npy(files["frame_ids.npy"], sel.frame_ids)
    meta = assets.stage1_meta(sample_id=job["id"], key=job["key"], video=job["video"], sel_meta=sel.meta,
                              keep_frames_equiv=job["keep_frames_equiv"], padding_policy=job["padding_policy"])
    assets.save_json(files["meta.json"], meta)  # last: marks the sample as finished for resumed runs
    return {}


def _sharded_video_rows(rows: list[dict], args: argparse.Namespace) -> Iterator[tuple[dict, str, str, str]]:
    """(row, sample id, video, key) of the dataset rows with a video that fall in this shard."""
    for row in rows:
        video = row.get("video")
        if not video:
            continue
        sid = str(row.get("id", row["_row_idx"]))
        key = assets.sample_key(sid, video, row["_row_idx"])
        if in_shard(key, args.num_shards, args.shard_id):
            yield row, sid, video, key


def cmd_stage1(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    rows = load_dataset(args.input_json)
    roots = split_roots(args.video_root)
    grid = args.square_size // args.patch_size
    budget = args.budget or args.keep_frames_equiv * grid * grid
    jobs = []
    for row, sid, video, key in _sharded_video_rows(rows, args):
        prefix = assets.stage1_prefix(args.out_root, sid, video, row["_row_idx"], T=args.sequence_length,
                                      square_size=args.square_size, patch_size=args.patch_size, K=budget)
        jobs.append({"id": sid, "video": video, "key": key, "prefix": str(prefix),
                     "path": resolve_video(video, roots, Path(args.input_json).parent), "T": args.sequence_length,
                     "keep_frames_equiv": args.keep_frames_equiv, "square_size": args.square_size,
                     "patch_size": args.patch_size, "keep_first_full_frame": args.keep_first_full_frame,
                     "budget": budget, "sample_start_offset": args.sample_start_offset,
                     "padding_policy": args.padding_policy, "energy": _energy_from_args(args),
                     "overwrite": args.overwrite})
    results = []
    failed_lines = []
    for r in run_jobs(partial(run_guarded, _stage1_work), jobs, args.num_workers, "stage1"):
        results.append(r)
        if r["status"] == "failed":
            logger.error("stage1 failed: %s (%s)", r["job"]["path"], r["error"])
            failed_lines.append(f"{r['job']['id']}\t{r['job']['video']}\t{r['error']}")
    tag = f"shard{args.shard_id:02d}of{args.num_shards:02d}"
    assets.write_lines(Path(args.out_root) / f"stage1_failed.{tag}.txt", failed_lines)
    _summary("stage1", results, started)
    return 0


# ------------------------------------------------------------------------------------------------ packing
def _write_pack(directory: Path, video: str, mosaics: list[np.ndarray], positions: np.ndarray, quality: int,
                extra: dict[str, np.ndarray], meta: dict) -> tuple[list[Path], Path]:
    images = assets.pack_image_paths(directory, video, len(mosaics))
    for path, image in zip(images, mosaics, strict=True):
        assets.save_jpeg(path, image, quality)
    positions_path = directory / "positions_thw.npy"
    assets.save_npy(positions_path, positions.astype(np.int32))
    for name, array in extra.items():
        assets.save_npy(directory / name, array)
    assets.save_json(directory / "pack_meta.json", meta)  # last: marks the pack as finished
    return images, positions_path


def _pack_done(directory: Path, video: str, num_images: int) -> bool:
    names = [*assets.pack_image_paths(directory, video, num_images), directory / "positions_thw.npy",
             directory / "pack_meta.json"]
    return all(p.is_file() for p in names)


def _pack_work(job: dict) -> dict:
    directory = Path(job["pack_dir"])
    images = assets.pack_image_paths(directory, job["video"], job["num_images"])
    positions_path = directory / "positions_thw.npy"
    if not job["overwrite"] and _pack_done(directory, job["video"], job["num_images"]):
        return {"skipped": True, "record": assets.training_record(job["item"], images, positions_path)}
    if job["mode"] == "stage2":
        visidx = np.load(job["visidx"])
        frame_ids = np.load(job["frame_ids"])
        if visidx.shape[0] % job["num_images"]:
            raise ValueError(f"{job['visidx']}: K={visidx.shape[0]} is not a multiple of {job['num_images']}")
        positions = positions_from_visidx(visidx)
        frames, frame_of_t = read_letterboxed_frames(job["path"], frame_ids, job["square_size"])
        mosaics = pack_mosaics(frames, frame_of_t, positions, num_images=job["num_images"],
                               patch_size=job["patch_size"])
        meta = {"video": job["video"], "source": "stage2", "visidx": job["visidx"], "K": int(visidx.shape[0])}
        extra = {"frame_ids.npy": frame_ids.astype(np.int32)}
    else:
        sel = select_patches(job["path"], num_frames=job["T"], num_images=job["num_images"],
                             square_size=job["square_size"], patch_size=job["patch_size"], budget=job["budget"],
                             sample_start_offset=job["sample_start_offset"], energy=job["energy"])
        positions = sel.positions_thw
        mosaics = sel.mosaics()
        meta = {"video": job["video"], "source": "pack", **sel.meta}
        extra = {"frame_ids.npy": sel.frame_ids, "visidx_thw.npy": sel.visidx_thw}
    images, positions_path = _write_pack(directory, job["video"], mosaics, positions, job["jpg_quality"], extra,
                                         meta)
    return {"record": assets.training_record(job["item"], images, positions_path)}


def _find_stage1(stage1_root: Path, sid: str, video: str, row_idx: int, T: int, square: int, patch: int,
                 K: int) -> Path | None:
    """Exact stage-1 prefix for the row; else upstream's glob (any row hash / K) in the same folder."""
    prefix = assets.stage1_prefix(stage1_root, sid, video, row_idx, T=T, square_size=square, patch_size=patch, K=K)
    if assets.stage1_paths(prefix)["meta.json"].is_file():
        return prefix
    pattern = f"sample_{sid}__{Path(video).stem}__{assets.sha1_hex(str(video))[:8]}__*_T{T}*_p{patch}*_K*.meta.json"
    hits = sorted(stage1_root.glob(pattern))
    return hits[0].with_name(hits[0].name[: -len(".meta.json")]) if hits else None


def _cmd_pack_common(args: argparse.Namespace, mode: str) -> int:
    started = time.perf_counter()
    rows = load_dataset(args.input_json)
    roots = split_roots(args.video_root)
    grid = args.square_size // args.patch
    jobs, failed_lines, results = [], [], []
    for row, sid, video, _key in _sharded_video_rows(rows, args):
        job = {"id": sid, "video": video, "item": {k: v for k, v in row.items() if k != "_row_idx"},
               "row_idx": row["_row_idx"], "path": resolve_video(video, roots, Path(args.input_json).parent),
               "pack_dir": str(assets.pack_dir(args.out_image_root, sid, video)), "num_images": args.num_images,
               "square_size": args.square_size, "patch_size": args.patch, "T": args.T,
               "jpg_quality": args.jpg_quality, "overwrite": args.overwrite, "mode": mode,
               "budget": args.num_images * grid * grid, "sample_start_offset": getattr(args, "sample_start_offset", 0),
               "energy": _energy_from_args(args)}
        if mode == "stage2":
            prefix = _find_stage1(Path(args.stage1_root), sid, video, row["_row_idx"], args.T, args.square_size,
                                  args.patch, args.num_images * grid * grid)
            if prefix is None:
                msg = f"no stage-1 output for id={sid} video={video} under {args.stage1_root}"
                logger.error("stage2 failed: %s", msg)
                failed_lines.append(f"{sid}\t{video}\t{msg!r}\n")
                results.append({"status": "failed"})
                continue
            files = assets.stage1_paths(prefix)
            job["visidx"] = str(files["visidx_thw.npy"])
            job["frame_ids"] = str(files["frame_ids.npy"])
        jobs.append(job)
    records: dict[int, dict] = {}
    for r in run_jobs(partial(run_guarded, _pack_work), jobs, args.num_workers, mode):
        results.append(r)
        if r["status"] == "failed":
            logger.error("%s failed: %s (%s)", mode, r["job"]["path"], r["error"])
            failed_lines.append(f"{r['job']['id']}\t{r['job']['video']}\t{r['error']}\n{r['traceback']}")
        else:
            records[r["job"]["row_idx"]] = r["record"]
    out_jsonl = Path(args.out_jsonl)
    # Dataset order, not completion order (upstream's imap_unordered order was nondeterministic).
    assets.write_lines(out_jsonl, [json.dumps(records[k], ensure_ascii=False) for k in sorted(records)])
    assets.write_lines(out_jsonl.with_name(out_jsonl.name + ".fail.txt"), failed_lines)
    _summary(mode, results, started)
    return 0


def cmd_stage2(args: argparse.Namespace) -> int:
    if args.mode != "pack":
        raise SystemExit(f"stage2 --mode {args.mode}: only 'pack' is implemented (use `pack` to rebuild packs)")
    return _cmd_pack_common(args, "stage2")


def cmd_pack(args: argparse.Namespace) -> int:
    return _cmd_pack_common(args, "pack")


# ------------------------------------------------------------------------------------------------ precompute
def _precompute_work(job: dict) -> dict:
    directory = Path(job["dir"])
    if not job["overwrite"] and assets.eval_assets_complete(directory, job["num_images"]):
        return {"skipped": True}
    started = time.perf_counter()
    try:
        sel = select_patches(job["path"], num_frames=job["T"], num_images=job["num_images"],
                             square_size=job["square_size"], patch_size=job["patch_size"],
                             sample_start_offset=job["sample_start_offset"], energy=job["energy"])
    except Exception as err:
        assets.save_json(directory / "error.json", {"error": repr(err), "video": job["video"], "key": job["key"]})
        raise
    meta = {
        "version": assets.EVAL_META_VERSION,
        "task": job["task"], "split": job.get("split"), "doc_id": job.get("doc_id"), "n": job["n"],
        "video": job["video"], "key": job["key"],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cfg": {"seq_len_frames": job["T"], "num_images": job["num_images"], "square_size": job["square_size"],
                "patch_size": job["patch_size"], "sample_start_offset": job["sample_start_offset"],
                "keep_first_full_frame": True, "energy": sel.meta["energy"]},
        "debug": {"hb": sel.meta["grid"], "wb": sel.meta["grid"], "S_total": sel.meta["S_total"],
                  "S_valid": sel.meta["S_valid"], "K_total": sel.meta["K"], "N": sel.meta["num_packets"],
                  "padding_picked": sel.meta["padding_picked"], "signal": sel.meta["signal"],
                  "frame_signal_counts": sel.meta["frame_signal_counts"]},
        "stats": {"elapsed_sec": round(time.perf_counter() - started, 3), **sel.meta["timings"]},
    }
    assets.write_eval_assets(directory, mosaics=sel.mosaics(), positions_thw=sel.positions_thw,
                             visible_indices=sel.visible_indices, frame_ids=sel.frame_ids, meta=meta,
                             jpg_quality=job["jpg_quality"])
    return {}


def cmd_precompute(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    roots = split_roots(args.video_root)
    if args.videos_jsonl:
        entries = load_dataset(args.videos_jsonl)
        base = Path(args.videos_jsonl).parent
    else:
        entries = [{"video": v, "_row_idx": n} for n, v in enumerate(args.videos or [])]
        base = None
    # Keys for the whole list first: collisions are found even when the colliding videos fall in other shards.
    keyed, owner = [], {}
    for n, entry in enumerate(entries):
        path = resolve_video(entry["video"], roots, base)
        if args.key_mode == "stem":
            key = entry.get("key") or Path(entry["video"]).stem
        else:  # unique per path: same-stem videos no longer collide (spec 13.6)
            key = assets.asset_key(path, roots[0] if roots else None)
        if key in owner and owner[key] == path:
            logger.info("precompute: %s is listed twice, keeping the first entry", path)
            continue
        if key in owner:
            raise SystemExit(f"asset key {key!r} collides for {owner[key]} and {path} (use --key_mode path)")
        owner[key] = path
        keyed.append((n, entry, path, key))
    jobs = []
    for n, entry, path, key in keyed:
        if args.num_shards > 1 and n % args.num_shards != args.shard_id:
            continue
        jobs.append({"video": path, "key": key, "path": path, "dir": str(Path(args.out_root) / "assets" / key),
                     "task": args.task, "split": entry.get("split"), "doc_id": entry.get("doc_id"), "n": n,
                     "T": args.seq_len_frames, "num_images": args.num_images, "square_size": args.square_size,
                     "patch_size": args.patch_size, "sample_start_offset": args.sample_start_offset,
                     "jpg_quality": args.jpg_quality, "overwrite": args.overwrite, "energy": _energy_from_args(args)})
    results = []
    for r in run_jobs(partial(run_guarded, _precompute_work), jobs, args.num_workers, "precompute"):
        results.append(r)
        if r["status"] == "failed":
            logger.error("precompute failed: %s (%s)", r["job"]["path"], r["error"])
    _summary("precompute", results, started)
    return 0


# ------------------------------------------------------------------------------------------------ visualize
def cmd_visualize(args: argparse.Namespace) -> int:
    from .visualize import render_pipeline_figure

    sel = select_patches(args.video, num_frames=args.seq_len_frames, num_images=args.num_images,
                         square_size=args.square_size, patch_size=args.patch_size, budget=args.budget,
                         energy=_energy_from_args(args))
    out = Path(args.out)
    written = render_pipeline_figure(sel, out, gif=args.gif)
    print(f"[cv_reader visualize] wrote {', '.join(str(p) for p in written)}")
    return 0


# ------------------------------------------------------------------------------------------------ parser
def _add_pool(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num_workers", type=int, default=1, help="processes (videos in parallel)")
    p.add_argument("--num_shards", type=int, default=1)
    p.add_argument("--shard_id", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="redo finished samples instead of skipping them")
    p.add_argument("--video_root", action="append", help="root(s) for relative video paths (os.pathsep-separated)")
    p.add_argument("--energy", choices=["clean", "upstream"], default="clean", help="energy recipe (EnergyConfig)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cv_reader", description=__doc__)
    parser.add_argument("--log_level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stage1", help="dataset JSON/JSONL -> *.visidx_thw.npy, *.frame_ids.npy, *.meta.json")
    p.add_argument("--input_json", "--data_path", dest="input_json", required=True)
    p.add_argument("--out_root", required=True)
    p.add_argument("--sequence_length", type=int, default=64)
    p.add_argument("--keep_frames_equiv", type=int, default=8)
    p.add_argument("--square_size", type=int, default=576)
    p.add_argument("--patch_size", type=int, default=16)
    p.add_argument("--keep_first_full_frame", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--padding_policy", choices=["zero", "exclude"], default="zero")
    p.add_argument("--sample_start_offset", type=int, default=0)
    p.add_argument("--budget", type=int, default=None, help="K (default keep_frames_equiv * grid^2)")
    _add_pool(p)
    p.set_defaults(func=cmd_stage1)

    for name, func, helptext in (("stage2", cmd_stage2, "stage-1 outputs -> mosaics, positions_thw.npy, JSONL"),
                                 ("pack", cmd_pack, "raw dataset -> mosaics, positions_thw.npy, JSONL (one decode)")):
        p = sub.add_parser(name, help=helptext)
        if name == "stage2":
            p.add_argument("--mode", choices=["pack", "rewrite"], default="pack")
            p.add_argument("--stage1_root", required=True)
        else:
            p.add_argument("--sample_start_offset", type=int, default=0)
        p.add_argument("--input_json", "--data_path", dest="input_json", required=True)
        p.add_argument("--out_image_root", required=True)
        p.add_argument("--out_jsonl", required=True)
        p.add_argument("--num_images", type=int, default=8)
        p.add_argument("--T", type=int, default=64)
        p.add_argument("--patch", type=int, default=16)
        p.add_argument("--square_size", type=int, default=576)
        p.add_argument("--jpg_quality", type=int, default=95)
        p.add_argument("--write_positions", action=argparse.BooleanOptionalAction, default=True,
                       help="always written (accepted for upstream compatibility)")
        p.add_argument("--first_full", action=argparse.BooleanOptionalAction, default=True,
                       help="image 0 is frame t=0 in full (always, with keep_first_full_frame selections)")
        p.add_argument("--layout", choices=["time_spatial"], default="time_spatial")
        _add_pool(p)
        p.set_defaults(func=func)

    p = sub.add_parser("precompute", help="eval assets assets/<key>/mosaic_*.jpg, positions, indices, meta")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos_jsonl", help='lines {"video": path, "key": ...}')
    src.add_argument("--videos", nargs="+")
    p.add_argument("--out_root", required=True)
    p.add_argument("--task", default="")
    p.add_argument("--seq_len_frames", type=int, default=64)
    p.add_argument("--num_images", type=int, default=8)
    p.add_argument("--square_size", type=int, default=576)
    p.add_argument("--patch_size", type=int, default=16)
    p.add_argument("--sample_start_offset", type=int, default=0)
    p.add_argument("--jpg_quality", type=int, default=95)
    p.add_argument("--key_mode", choices=["path", "stem"], default="path",
                   help="path: stem + hash of the path (unique); stem: upstream keys (may collide: refused)")
    _add_pool(p)
    p.set_defaults(func=cmd_precompute)

    p = sub.add_parser("visualize", help="pipeline figure of one video (PNG, optional GIF)")
    p.add_argument("video")
    p.add_argument("--out", required=True, help="output PNG path")
    p.add_argument("--gif", action="store_true", help="also write an animated GIF next to it")
    p.add_argument("--seq_len_frames", type=int, default=64)
    p.add_argument("--num_images", type=int, default=8)
    p.add_argument("--square_size", type=int, default=576)
    p.add_argument("--patch_size", type=int, default=16)
    p.add_argument("--budget", type=int, default=None)
    p.add_argument("--energy", choices=["clean", "upstream"], default="clean")
    p.set_defaults(func=cmd_visualize)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m cv_reader` and the `cv_reader` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
