"""Command line: `python -m cv_reader {stage1,stage2,pack,precompute,visualize}` (upstream flags and file names,
spec 7-9). Batch commands run a process pool over videos (`cv_reader.batch`: a worker that dies fails only its own
video), shard with `--num_shards/--shard_id`, skip finished work whose stored parameters match the request (and
redo it when they differ), write atomically, log each failure with its reason and go on, and print a summary line.

Exit status of the batch commands: 0 when every item was done or skipped, 1 when at least one item failed (listed in
the fail file / `error.json`), 2 when the input itself cannot be used (unreadable or malformed dataset file, colliding
asset keys, bad arguments)."""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import assets
from .batch import run_jobs
from .decode import probe_video
from .errors import VideoReadError
from .frames import read_letterboxed_frames
from .packing import pack_mosaics
from .pipeline import CodecSelection, check_arguments, select_patches
from .saliency import EnergyConfig
from .selection import positions_from_visidx

logger = logging.getLogger("cv_reader")

EXIT_OK, EXIT_ITEM_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_HELP = (
    "exit status: 0 every item done or skipped; 1 at least one item failed (see the fail list); "
    "2 the input cannot be used (unreadable dataset file, colliding keys, bad arguments); "
    "130 / 143 interrupted by Ctrl-C / SIGTERM (finished items are kept: a rerun resumes)"
)


class BadInputError(ValueError):
    """The batch input as a whole cannot be used (exit status 2)."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so the run stops the same way: the worker processes are
    ended (`batch`), nothing half-written is left (every output is written to a temporary name, then renamed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


# ------------------------------------------------------------------------------------------------ inputs
def _line_rows(path: Path, lines: Iterable[str | bytes]) -> Iterator:
    """JSON values of JSONL lines (blank lines skipped); a line that is not JSON (or not UTF-8) gives a ValueError
    naming the file and line, as one failed item. `lines` must be split on "\\n" only: JSON strings may hold U+2028,
    U+0085 and the like raw, where str.splitlines() would cut a row in three (a trailing "\\r" is JSON whitespace)."""
    for number, line in enumerate(lines):
        if number == 0 and isinstance(line, bytes) and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]  # a UTF-8 BOM (Windows editors, pandas' utf-8-sig)
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            yield ValueError(f"{path}:{number + 1}: invalid JSON ({err})")


def _document_rows(path: Path, text: str) -> list | Iterator:
    """Rows of a JSON list, or of JSONL lines when a `.json` file is not one JSON document."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as err:
        if text.lstrip().startswith("["):
            raise BadInputError(f"{path}: invalid JSON ({err})") from err
        return _line_rows(path, text.split("\n"))
    if not isinstance(rows, list):
        raise BadInputError(f"{path}: expected a JSON list of objects, got {type(rows).__name__}")
    return rows


def iter_dataset(path: str | Path) -> Iterator[dict]:
    """Rows of a dataset JSON (list) or JSONL file, each with `_row_idx` (kept if present, else the row index).

    A `.jsonl` file is read line by line: a batch over a 1.5M-row manifest holds the jobs of its shard, not every
    row (200k rows of LLaVA-Video JSONL held 670 MiB as Python objects). A row that is not a JSON object (a list, a
    number, a broken line) becomes `{"_row_idx": n, "_error": why}` so that the batch reports it as one failed item
    and goes on. Raises `BadInputError` (at once, not when iterated) when the file itself cannot be read.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as err:
        raise BadInputError(f"{path}: cannot read the dataset file ({err})") from err
    if path.suffix == ".jsonl":
        return _numbered_rows(path, _line_rows(path, handle), handle)
    with handle:
        try:
            text = handle.read().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise BadInputError(f"{path}: cannot read the dataset file ({err})") from err
    return _numbered_rows(path, _document_rows(path, text), None)


def _numbered_rows(path: Path, parsed: Iterable, handle: BinaryIO | None) -> Iterator[dict]:
    try:
        for number, row in enumerate(parsed):
            if isinstance(row, Exception):
                yield {"_row_idx": number, "_error": str(row)}
            elif not isinstance(row, dict):
                kind = type(row).__name__
                yield {"_row_idx": number, "_error": f"{path}: row {number}: expected a JSON object, got {kind}"}
            else:
                yield {"_row_idx": number, **row}
    finally:
        if handle is not None:
            handle.close()


def load_dataset(path: str | Path) -> list[dict]:
    """`iter_dataset` as a list."""
    return list(iter_dataset(path))


def split_roots(values: list[str] | None) -> list[str]:
    """`--video_root` values, each possibly `os.pathsep`-separated (several roots)."""
    out: list[str] = []
    for value in values or []:
        out.extend(v for v in value.split(os.pathsep) if v)
    return out


def resolve_video(video: str, *, roots: list[str], base: Path | None) -> str:
    """Absolute path of a video: absolute paths as they are; relative ones under the first root (then the dataset
    folder) where they exist."""
    if os.path.isabs(video):
        return video
    for root in [*roots, *([str(base)] if base else [])]:
        candidate = os.path.join(root, video)
        if os.path.exists(candidate):
            return os.path.abspath(candidate)
    return os.path.abspath(os.path.join(roots[0], video) if roots else video)


def in_shard(key: str, *, num_shards: int, shard_id: int) -> bool:
    """Upstream sharding: `int(sha1(key)[:8], 16) % num_shards == shard_id`."""
    return num_shards <= 1 or int(assets.sha1_hex(key)[:8], 16) % num_shards == shard_id


def _energy_from_args(args: argparse.Namespace) -> EnergyConfig:
    return EnergyConfig.upstream() if getattr(args, "energy", "clean") == "upstream" else EnergyConfig()


def _row_problem(row: dict) -> str | None:
    """Why a dataset row with a `video` cannot be processed, or None."""
    if "_error" in row:
        return row["_error"]
    if not isinstance(row["video"], str):
        return f"row {row['_row_idx']}: 'video' must be a path string, got {type(row['video']).__name__}"
    if not row["video"].strip():
        return f"row {row['_row_idx']}: 'video' is an empty path"
    if "id" in row and not isinstance(row["id"], (str, int)):
        return f"row {row['_row_idx']}: 'id' must be a string or integer, got {type(row['id']).__name__}"
    return None


def _sharded_rows(rows: Iterable[dict], args: argparse.Namespace) -> Iterator[tuple[dict, str, str, str | None]]:
    """(row, sample id, video, problem) of the dataset rows with a video (or broken ones) in this shard."""
    without_video = total = 0
    for row in rows:
        total += 1
        if "_error" not in row and row.get("video") is None:
            without_video += 1  # an image or text sample: not ours (upstream writes video rows only, spec 8.7)
            continue
        problem = _row_problem(row)
        sample_id = str(row.get("id", row["_row_idx"])) if problem is None else str(row["_row_idx"])
        video = row["video"] if problem is None else str(row.get("video", ""))
        key = assets.sample_key(sample_id, video, row_idx=row["_row_idx"])
        if in_shard(key, num_shards=args.num_shards, shard_id=args.shard_id):
            yield row, sample_id, video, problem
    if without_video:
        logger.warning(
            "%s: %d of %d rows have no 'video' (image or text samples): they are not in this command's output",
            args.input_json,
            without_video,
            total,
        )


# ------------------------------------------------------------------------------------------------ resume
def stored_params_match(meta_path: Path, params: dict) -> bool:
    """True when `meta_path` exists and records exactly `params` under "params" (a resumed run may then skip the
    item). Different or missing parameters are logged: the item is redone with the new ones."""
    if not meta_path.is_file():
        return False
    try:
        stored = json.loads(meta_path.read_text(encoding="utf-8")).get("params")
    except (OSError, ValueError, AttributeError):
        logger.warning("%s: unreadable, redoing the item", meta_path)
        return False
    if stored == params:
        return True
    if not isinstance(stored, dict):
        logger.warning("%s: no stored parameters (older run, or edited), redoing the item", meta_path)
    else:
        changed = sorted(k for k in set(stored) | set(params) if stored.get(k) != params.get(k))
        logger.warning(
            "%s: stored parameters differ from this run (%s), redoing the item",
            meta_path,
            ", ".join(f"{k}: {stored.get(k)!r} -> {params.get(k)!r}" for k in changed),
        )
    return False


def _clear_outputs(directory: Path) -> None:
    """Remove the files of an earlier run with other parameters from an item's own folder (e.g. extra mosaics)."""
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.is_file() and entry.suffix in (".jpg", ".npy", ".json"):
                entry.unlink()


def _common_params(args: argparse.Namespace) -> dict:
    return {
        "sample_start_offset": getattr(args, "sample_start_offset", 0),
        "energy": dataclasses.asdict(_energy_from_args(args)),
    }


def _finish(name: str, results: list[dict], *, started: float) -> int:
    """Print the summary line and return the exit status (1 when any item failed)."""
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    for result in results:
        status = result.get("status", "failed")
        counts[status] = counts.get(status, 0) + 1
    print(
        f"[cv_reader {name}] {counts['ok']} done, {counts['skipped']} skipped (already done), "
        f"{counts['failed']} failed in {time.perf_counter() - started:.1f} s"
    )
    return EXIT_ITEM_FAILED if counts["failed"] else EXIT_OK


def _fail_line(result: dict, *, traceback: bool = False) -> str:
    """Upstream's fail-list line `id<TAB>video<TAB>error` (then the traceback for stage 2 / pack). Tabs and line
    breaks inside the id and the path are written as `\\t`, `\\n`, `\\r`, so one failure stays one line."""

    def field(value: object) -> str:
        return str(value).replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")

    line = f"{field(result['job']['id'])}\t{field(result['job']['video'])}\t{result['error']}"
    return f"{line}\n{result['traceback']}".rstrip("\n") if traceback else line


def _failed(job: dict, error: str) -> dict:
    name = job.get("video") or job.get("id")  # (an entry without either: the error says which entry it is)
    logger.error("failed: %s", f"{name} ({error})" if name else error)
    return {"status": "failed", "error": error, "traceback": "", "job": job}


def _run_collect(
    work: Callable[[dict], dict], jobs: list[dict], *, args: argparse.Namespace, name: str
) -> Iterator[dict]:
    """Run the jobs and log each failure with its video and reason."""
    for result in run_jobs(work, jobs, num_workers=args.num_workers, desc=name):
        if result["status"] == "failed":
            logger.error(
                "%s failed: %s (%s)", name, result["job"].get("path") or result["job"].get("video"), result["error"]
            )
        yield result


def _select_job(job: dict, *, num_images: int, **options) -> CodecSelection:
    """`select_patches` of a batch job: the geometry every command stores under the same names (T, square_size,
    patch_size, sample_start_offset) plus the job's energy recipe; `num_images` and the rest are stored under
    command-specific names (stage 1 keeps upstream's), so the caller passes them."""
    params = job["params"]
    return select_patches(
        job["path"],
        num_frames=params["T"],
        num_images=num_images,
        square_size=params["square_size"],
        patch_size=params["patch_size"],
        sample_start_offset=params["sample_start_offset"],
        energy=job["energy"],
        **options,
    )


# ------------------------------------------------------------------------------------------------ stage 1
def _stage1_work(job: dict) -> dict:
    prefix = Path(job["prefix"])
    files = assets.stage1_paths(prefix)
    if (
        not job["overwrite"]
        and all(p.is_file() for p in files.values())
        and stored_params_match(files["meta.json"], job["params"])
    ):
        return {"skipped": True}
    params = job["params"]
    selection = _select_job(
        job,
        num_images=params["keep_frames_equiv"],
        keep_first_full_frame=params["keep_first_full_frame"],
        budget=params["budget"],
        padding_policy=params["padding_policy"],
        keep_pixels=False,
    )
    assets.save_npy(files["visidx_thw.npy"], selection.visidx_thw)
    assets.save_npy(files["frame_ids.npy"], selection.frame_ids)
    meta = assets.stage1_meta(
        sample_id=job["id"],
        key=job["key"],
        video=job["video"],
        sel_meta=selection.meta,
        keep_frames_equiv=params["keep_frames_equiv"],
        padding_policy=params["padding_policy"],
    )
    assets.save_json(files["meta.json"], {**meta, "params": params})  # last: marks the item as finished
    return {}


def cmd_stage1(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    rows = iter_dataset(args.input_json)
    roots = split_roots(args.video_root)
    grid = args.square_size // args.patch_size
    params = {
        "command": "stage1",
        "T": args.sequence_length,
        "keep_frames_equiv": args.keep_frames_equiv,
        "square_size": args.square_size,
        "patch_size": args.patch_size,
        "budget": args.budget or args.keep_frames_equiv * grid * grid,
        "keep_first_full_frame": args.keep_first_full_frame,
        "padding_policy": args.padding_policy,
        **_common_params(args),
    }
    out_root = Path(args.out_root)
    assets.remove_stale_temps(out_root)
    jobs, results = [], []
    for row, sample_id, video, problem in _sharded_rows(rows, args):
        job = {"id": sample_id, "video": video, "path": video, "row_idx": row["_row_idx"]}
        if problem is not None:
            results.append(_failed(job, problem))
            continue
        try:
            prefix = assets.stage1_prefix(
                out_root,
                sample_id=sample_id,
                video=video,
                row_idx=row["_row_idx"],
                T=params["T"],
                square_size=params["square_size"],
                patch_size=params["patch_size"],
                K=params["budget"],
            )
        except ValueError as err:
            results.append(_failed(job, str(err)))
            continue
        jobs.append(
            {
                **job,
                "key": assets.sample_key(sample_id, video, row_idx=row["_row_idx"]),
                "prefix": str(prefix),
                "path": resolve_video(video, roots=roots, base=Path(args.input_json).parent),
                "params": params,
                "energy": _energy_from_args(args),
                "overwrite": args.overwrite,
            }
        )
    results.extend(_run_collect(_stage1_work, jobs, args=args, name="stage1"))
    failed_lines = [_fail_line(r) for r in results if r["status"] == "failed"]
    tag = f"shard{args.shard_id:02d}of{args.num_shards:02d}"
    assets.write_lines(out_root / f"stage1_failed.{tag}.txt", failed_lines)
    return _finish("stage1", results, started=started)


# ------------------------------------------------------------------------------------------------ packing
def _write_pack(
    directory: Path,
    *,
    job: dict,
    mosaics: list[np.ndarray],
    positions: np.ndarray,
    extra: dict[str, np.ndarray],
    meta: dict,
) -> tuple[list[Path], Path | None]:
    params = job["params"]
    images = assets.pack_image_paths(directory, video=job["video"], num_images=len(mosaics))
    for path, image in zip(images, mosaics, strict=True):
        assets.save_jpeg(path, image, quality=params["jpg_quality"])
    positions_path = None
    if params["write_positions"]:
        positions_path = directory / "positions_thw.npy"
        assets.save_npy(positions_path, positions.astype(np.int32))
    for name, array in extra.items():
        assets.save_npy(directory / name, array)
    assets.save_json(directory / "pack_meta.json", {**meta, "params": params})  # last: marks the pack as finished
    return images, positions_path


def _pack_done(directory: Path, job: dict) -> bool:
    params = job["params"]
    names = assets.pack_image_paths(directory, video=job["video"], num_images=params["num_images"])
    if params["write_positions"]:
        names.append(directory / "positions_thw.npy")
    return all(p.is_file() for p in names) and stored_params_match(directory / "pack_meta.json", params)


def _load_stage1_array(path: str) -> np.ndarray:
    """A stage-1 `.npy`, or ValueError naming the file (a truncated or missing file said only "EOF" or "[Errno 2]")."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: cannot read the stage-1 array ({type(err).__name__}: {err})") from err


def _stored_frame_count(meta_path: str) -> int | None:
    """The frame count stage 1 recorded in its `meta.json` (this package's block), or None (upstream's meta, or
    none)."""
    try:
        count = json.loads(Path(meta_path).read_text(encoding="utf-8"))["cv_reader"]["num_packets"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return count if isinstance(count, int) else None


def _stage2_selection(job: dict) -> tuple[list[np.ndarray], np.ndarray, dict, dict]:
    """Mosaics of a stage-1 selection (pixels from one more decode of the sampled frames)."""
    params = job["params"]
    visidx = _load_stage1_array(job["visidx"])
    frame_ids = _load_stage1_array(job["frame_ids"])
    if frame_ids.ndim != 1 or frame_ids.size != params["T"] or frame_ids.dtype.kind not in "iu" or frame_ids.min() < 0:
        raise ValueError(
            f"{job['frame_ids']}: {frame_ids.dtype} {frame_ids.shape} is not T={params['T']} frame indices"
        )
    # The video must be the one stage 1 read: a replaced or re-encoded file would be packed with other frames.
    info = probe_video(job["path"])
    seen = _stored_frame_count(job["stage1_meta"])
    if seen is not None and seen != info.num_frames:
        raise ValueError(
            f"{job['path']}: the video changed since stage 1 ({seen} frames then, {info.num_frames} now); "
            "run stage 1 again for it"
        )
    if int(frame_ids.max()) >= info.num_frames:
        raise ValueError(
            f"{job['frame_ids']}: samples frame {int(frame_ids.max())} of a {info.num_frames}-frame video: the "
            "stage-1 files do not belong to this video"
        )
    if visidx.ndim != 2 or visidx.shape[1] != 3 or visidx.shape[0] % params["num_images"]:
        raise ValueError(
            f"{job['visidx']}: shape {visidx.shape} is not [K, 3] with K a multiple of {params['num_images']}"
        )
    grid = params["square_size"] // params["patch_size"]
    cells = grid * grid
    first_whole = visidx.shape[0] >= cells and np.array_equal(
        visidx[:cells], np.stack([np.zeros(cells, int), *np.divmod(np.arange(cells), grid)], axis=1)
    )
    if params["first_full"] and not first_whole:
        raise ValueError(
            f"{job['visidx']}: frame t=0 is not kept whole (stage 1 without --keep_first_full_frame); "
            "pass --no-first_full to pack it as it is"
        )
    positions = positions_from_visidx(visidx)
    frames, frame_of_t = read_letterboxed_frames(job["path"], frame_ids, square_size=params["square_size"], info=info)
    mosaics = pack_mosaics(
        frames, frame_of_t, positions_thw=positions, num_images=params["num_images"], patch_size=params["patch_size"]
    )
    meta = {"video": job["video"], "source": "stage2", "visidx": job["visidx"], "K": int(visidx.shape[0])}
    return mosaics, positions, {"frame_ids.npy": frame_ids.astype(np.int32)}, meta


def _pack_work(job: dict) -> dict:
    directory = Path(job["pack_dir"])
    assets.remove_stale_temps(directory)
    params = job["params"]
    if not job["overwrite"] and _pack_done(directory, job):
        images = assets.pack_image_paths(directory, video=job["video"], num_images=params["num_images"])
        positions_path = directory / "positions_thw.npy" if params["write_positions"] else None
        record = assets.training_record(job["item"], images=images, positions=positions_path)
        return {"skipped": True, "record": record}
    _clear_outputs(directory)
    if params["command"] == "stage2":
        mosaics, positions, extra, meta = _stage2_selection(job)
    else:
        selection = _select_job(job, num_images=params["num_images"], keep_first_full_frame=params["first_full"])
        positions, mosaics = selection.positions_thw, selection.mosaics()
        meta = {"video": job["video"], "source": "pack", **selection.meta}
        extra = {"frame_ids.npy": selection.frame_ids, "visidx_thw.npy": selection.visidx_thw}
    images, positions_path = _write_pack(
        directory, job=job, mosaics=mosaics, positions=positions, extra=extra, meta=meta
    )
    return {"record": assets.training_record(job["item"], images=images, positions=positions_path)}


def _find_stage1(stage1_root: Path, *, sample_id: str, video: str, row_idx: int, params: dict) -> Path | None:
    """Exact stage-1 prefix for the row; else upstream's glob (any row hash / K) in the same folder."""
    grid = params["square_size"] // params["patch_size"]
    prefix = assets.stage1_prefix(
        stage1_root,
        sample_id=sample_id,
        video=video,
        row_idx=row_idx,
        T=params["T"],
        square_size=params["square_size"],
        patch_size=params["patch_size"],
        K=params["num_images"] * grid * grid,
    )
    if assets.stage1_paths(prefix)["meta.json"].is_file():
        return prefix
    pattern = (
        f"sample_{assets.safe_name(sample_id)}__{assets.safe_name(Path(video).stem)}__"
        f"{assets.sha1_hex(str(video))[:8]}__*_T{params['T']}*_p{params['patch_size']}*_K*.meta.json"
    )
    hits = sorted(stage1_root.glob(pattern))
    return hits[0].with_name(hits[0].name[: -len(".meta.json")]) if hits else None


def _conversation_problem(row: dict) -> str | None:
    """Why a row's `conversations` cannot be rewritten into the training record (`rewrite_conversations`), or None.
    Checked before the video is decoded, so the error names the field rather than a failure inside the rewrite."""
    turns = row.get("conversations", [])
    if not isinstance(turns, list):
        return f"row {row['_row_idx']}: 'conversations' must be a list of turns, got {type(turns).__name__}"
    for n, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return f"row {row['_row_idx']}: conversations[{n}] must be an object, got {type(turn).__name__}"
        if not isinstance(turn.get("value", ""), str):
            kind = type(turn["value"]).__name__
            return f"row {row['_row_idx']}: conversations[{n}].value must be a string, got {kind}"
    return None


def _pack_job(row: dict, *, sample_id: str, video: str, args: argparse.Namespace, params: dict) -> dict:
    """The job of one dataset row (raises ValueError when the row cannot be packed)."""
    problem = _conversation_problem(row)
    if problem is not None:
        raise ValueError(problem)
    job = {
        "id": sample_id,
        "video": video,
        "item": {k: v for k, v in row.items() if k != "_row_idx"},
        "row_idx": row["_row_idx"],
        "path": resolve_video(video, roots=split_roots(args.video_root), base=Path(args.input_json).parent),
        "pack_dir": str(assets.pack_dir(args.out_image_root, sample_id=sample_id, video=video)),
        "params": params,
        "energy": _energy_from_args(args),
        "overwrite": args.overwrite,
    }
    if params["command"] == "stage2":
        prefix = _find_stage1(
            Path(args.stage1_root), sample_id=sample_id, video=video, row_idx=row["_row_idx"], params=params
        )
        if prefix is None:
            raise ValueError(f"no stage-1 output for id={sample_id} video={video} under {args.stage1_root}")
        files = assets.stage1_paths(prefix)
        job["visidx"] = str(files["visidx_thw.npy"])
        job["frame_ids"] = str(files["frame_ids.npy"])
        job["stage1_meta"] = str(files["meta.json"])
        job["params"] = {**params, "visidx": job["visidx"]}
    return job


def _cmd_pack_common(args: argparse.Namespace, command: str) -> int:
    started = time.perf_counter()
    rows = iter_dataset(args.input_json)
    # Absolute media paths in the JSONL: a relative --out_image_root would otherwise be read against the JSONL's
    # folder by `load_manifest`, not against the folder this command ran in.
    args.out_image_root = os.path.abspath(args.out_image_root)
    out_jsonl = Path(args.out_jsonl)
    assets.remove_stale_temps(out_jsonl.parent)
    params = {
        "command": command,
        "num_images": args.num_images,
        "T": args.T,
        "square_size": args.square_size,
        "patch_size": args.patch,
        "jpg_quality": args.jpg_quality,
        "first_full": args.first_full,
        "write_positions": args.write_positions,
        **_common_params(args),
    }
    jobs, results = [], []
    for row, sample_id, video, problem in _sharded_rows(rows, args):
        try:
            if problem is not None:
                raise ValueError(problem)
            jobs.append(_pack_job(row, sample_id=sample_id, video=video, args=args, params=params))
        except ValueError as err:
            results.append(_failed({"id": sample_id, "video": video, "row_idx": row["_row_idx"]}, str(err)))
    results.extend(_run_collect(_pack_work, jobs, args=args, name=command))
    records = {r["job"]["row_idx"]: r["record"] for r in results if r["status"] != "failed"}
    failed_lines = [_fail_line(r, traceback=True) for r in results if r["status"] == "failed"]
    # Dataset order, not completion order (upstream's imap_unordered order was nondeterministic).
    assets.write_lines(out_jsonl, [assets.json_text(records[k]) for k in sorted(records)])
    assets.write_lines(out_jsonl.with_name(out_jsonl.name + ".fail.txt"), failed_lines)
    return _finish(command, results, started=started)


def cmd_stage2(args: argparse.Namespace) -> int:
    return _cmd_pack_common(args, "stage2")


def cmd_pack(args: argparse.Namespace) -> int:
    return _cmd_pack_common(args, "pack")


# ------------------------------------------------------------------------------------------------ precompute
def _precompute_meta(job: dict, selection, *, started: float) -> dict:
    params, meta = job["params"], selection.meta
    return {
        "version": assets.EVAL_META_VERSION,
        "task": job["task"],
        "split": job.get("split"),
        "doc_id": job.get("doc_id"),
        "n": job["n"],
        "video": job["video"],
        "key": job["key"],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cfg": {
            "seq_len_frames": params["T"],
            "num_images": params["num_images"],
            "square_size": params["square_size"],
            "patch_size": params["patch_size"],
            "sample_start_offset": params["sample_start_offset"],
            "keep_first_full_frame": True,
            "energy": meta["energy"],
        },
        "debug": {
            "hb": meta["grid"],
            "wb": meta["grid"],
            "S_total": meta["S_total"],
            "S_valid": meta["S_valid"],
            "K_total": meta["K"],
            "N": meta["num_packets"],
            "padding_picked": meta["padding_picked"],
            "signal": meta["signal"],
            "frame_signal_counts": meta["frame_signal_counts"],
        },
        "stats": {"elapsed_sec": round(time.perf_counter() - started, 3), **meta["timings"]},
        "params": params,
    }


def _precompute_work(job: dict) -> dict:
    directory = Path(job["dir"])
    assets.remove_stale_temps(directory)
    params = job["params"]
    if (
        not job["overwrite"]
        and assets.eval_assets_complete(directory, params["num_images"])
        and (stored_params_match(directory / "meta.json", params))
    ):
        return {"skipped": True}
    _clear_outputs(directory)
    started = time.perf_counter()
    try:
        selection = _select_job(job, num_images=params["num_images"])
    except Exception as err:
        assets.save_json(directory / "error.json", {"error": repr(err), "video": job["video"], "key": job["key"]})
        raise
    assets.write_eval_assets(
        directory,
        mosaics=selection.mosaics(),
        positions_thw=selection.positions_thw,
        visible_indices=selection.visible_indices,
        frame_ids=selection.frame_ids,
        meta=_precompute_meta(job, selection, started=started),
        jpg_quality=params["jpg_quality"],
    )
    return {}


def _precompute_entries(args: argparse.Namespace) -> tuple[list[dict], Path | None]:
    if args.videos_jsonl:
        return load_dataset(args.videos_jsonl), Path(args.videos_jsonl).parent
    return [{"video": v, "_row_idx": n} for n, v in enumerate(args.videos or [])], None


def _entry_key(entry: dict, *, path: str, args: argparse.Namespace, roots: list[str]) -> str:
    if args.key_mode == "stem":
        return assets.safe_name(entry.get("key") or Path(entry["video"]).stem)
    return assets.asset_key(path, roots[0] if roots else None)  # unique per path (spec 13.6)


def cmd_precompute(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    roots = split_roots(args.video_root)
    entries, base = _precompute_entries(args)
    out_root = Path(args.out_root)
    params = {
        "command": "precompute",
        "T": args.seq_len_frames,
        "num_images": args.num_images,
        "square_size": args.square_size,
        "patch_size": args.patch_size,
        "jpg_quality": args.jpg_quality,
        **_common_params(args),
    }
    # Keys for the whole list first: collisions are found even when the colliding videos fall in other shards.
    jobs, results, owner = [], [], {}
    for n, entry in enumerate(entries):
        mine = args.num_shards <= 1 or n % args.num_shards == args.shard_id
        problem = entry.get("_error") or (
            None
            if isinstance(entry.get("video"), str) and entry["video"]
            else f"entry {n}: needs a 'video' path string"
        )
        if problem is not None:
            if mine:  # each shard reports its own bad entries
                results.append(_failed({"video": str(entry.get("video", "")), "n": n}, problem))
            continue
        path = resolve_video(entry["video"], roots=roots, base=base)
        key = _entry_key(entry, path=path, args=args, roots=roots)
        if key in owner and owner[key] == path:
            logger.info("precompute: %s is listed twice, keeping the first entry", path)
            continue
        if key in owner:
            raise BadInputError(f"asset key {key!r} collides for {owner[key]} and {path} (use --key_mode path)")
        owner[key] = path
        if not mine:
            continue
        jobs.append(
            {
                "video": path,
                "key": key,
                "path": path,
                "n": n,
                "task": args.task,
                "split": entry.get("split"),
                "doc_id": entry.get("doc_id"),
                "params": params,
                "energy": _energy_from_args(args),
                "dir": str(assets.inside(out_root / "assets", out_root / "assets" / key)),
                "overwrite": args.overwrite,
            }
        )
    results.extend(_run_collect(_precompute_work, jobs, args=args, name="precompute"))
    return _finish("precompute", results, started=started)


# ------------------------------------------------------------------------------------------------ visualize
def cmd_visualize(args: argparse.Namespace) -> int:
    from .visualize import render_pipeline_figure

    try:
        selection = select_patches(
            args.video,
            num_frames=args.seq_len_frames,
            num_images=args.num_images,
            square_size=args.square_size,
            patch_size=args.patch_size,
            budget=args.budget,
            energy=_energy_from_args(args),
        )
    except VideoReadError as err:  # the one video cannot be used: say why, no traceback (exit status 1)
        print(f"[cv_reader visualize] {err}", file=sys.stderr)
        return 1
    out = Path(args.out)
    written = render_pipeline_figure(selection, out, gif=args.gif)
    print(f"[cv_reader visualize] wrote {', '.join(str(p) for p in written)}")
    return 0


# ------------------------------------------------------------------------------------------------ parser
def _add_pool(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--num_workers",
        type=int,
        default=1,
        help="worker processes (videos in parallel; a worker that dies fails only its video); "
        "0 runs in this process (debugging)",
    )
    p.add_argument("--num_shards", type=int, default=1)
    p.add_argument("--shard_id", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="redo finished samples instead of skipping them")
    p.add_argument("--video_root", action="append", help="root(s) for relative video paths (os.pathsep-separated)")
    p.add_argument("--energy", choices=["clean", "upstream"], default="clean", help="energy recipe (EnergyConfig)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cv_reader", description=__doc__, epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log_level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "stage1", epilog=EXIT_HELP, help="dataset JSON/JSONL -> *.visidx_thw.npy, *.frame_ids.npy, *.meta.json"
    )
    p.add_argument("--input_json", "--data_path", dest="input_json", required=True)
    p.add_argument("--out_root", required=True)
    p.add_argument("--sequence_length", type=int, default=64)
    p.add_argument("--keep_frames_equiv", type=int, default=8)
    p.add_argument("--square_size", type=int, default=576)
    p.add_argument("--patch_size", type=int, default=16)
    p.add_argument("--keep_first_full_frame", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--padding_policy",
        choices=["zero", "exclude"],
        default="zero",
        help="zero: letterbox padding cells rank after every content cell (upstream); exclude: never "
        "selected (an item fails when the content cells cannot fill the budget)",
    )
    p.add_argument("--sample_start_offset", type=int, default=0)
    p.add_argument("--budget", type=int, default=None, help="K (default keep_frames_equiv * grid^2)")
    _add_pool(p)
    p.set_defaults(func=cmd_stage1)

    for name, func, helptext in (
        ("stage2", cmd_stage2, "stage-1 outputs -> mosaics, positions_thw.npy, JSONL"),
        ("pack", cmd_pack, "raw dataset -> mosaics, positions_thw.npy, JSONL (one decode)"),
    ):
        p = sub.add_parser(name, help=helptext, epilog=EXIT_HELP)
        if name == "stage2":
            p.add_argument(
                "--mode",
                choices=["pack"],
                default="pack",
                help="pack stage-1 selections into mosaics (upstream's 'rewrite' mode is not offered)",
            )
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
        p.add_argument(
            "--write_positions",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="write positions_thw.npy and name it in the JSONL (--no-write_positions: neither)",
        )
        p.add_argument(
            "--first_full",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="image 0 is frame t=0 in full: pack keeps t=0 whole, stage2 checks that stage 1 did "
            "(--no-first_full: t=0 competes like every other frame / packed as stage 1 chose)",
        )
        _add_pool(p)
        p.set_defaults(func=func)

    p = sub.add_parser(
        "precompute", epilog=EXIT_HELP, help="eval assets assets/<key>/mosaic_*.jpg, positions, indices, meta"
    )
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
    p.add_argument(
        "--key_mode",
        choices=["path", "stem"],
        default="path",
        help="path: stem + hash of the path (unique); stem: upstream keys (may collide: refused)",
    )
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


# The `select_patches` arguments of each command: library name -> the command's flag (upstream's names).
_GEOMETRY_FLAGS = {
    "stage1": {
        "num_frames": "sequence_length",
        "num_images": "keep_frames_equiv",
        "square_size": "square_size",
        "patch_size": "patch_size",
        "budget": "budget",
        "keep_first_full_frame": "keep_first_full_frame",
        "padding_policy": "padding_policy",
    },
    "pack": {
        "num_frames": "T",
        "num_images": "num_images",
        "square_size": "square_size",
        "patch_size": "patch",
        "keep_first_full_frame": "first_full",
    },
    "precompute": {
        "num_frames": "seq_len_frames",
        "num_images": "num_images",
        "square_size": "square_size",
        "patch_size": "patch_size",
    },
}
_GEOMETRY_FLAGS["stage2"] = _GEOMETRY_FLAGS["pack"]
_GEOMETRY_FLAGS["visualize"] = {**_GEOMETRY_FLAGS["precompute"], "budget": "budget"}


def check_command_arguments(args: argparse.Namespace) -> None:
    """Refuse values that would fail every item (or do nothing) before any video is read: the geometry
    (`check_arguments`), the shard, the worker count, the JPEG quality and the video roots. Raises `BadInputError`
    (exit status 2)."""
    flags = _GEOMETRY_FLAGS[args.command]
    try:
        check_arguments(**{name: getattr(args, flag) for name, flag in flags.items()})
    except ValueError as err:
        name = str(err).split(" ", 1)[0]
        where = f"--{flags[name]}: " if name in flags else ""
        raise BadInputError(f"bad arguments: {where}{err}") from err
    shards = getattr(args, "num_shards", 1)
    if shards < 1 or not 0 <= getattr(args, "shard_id", 0) < shards:
        raise BadInputError(f"bad arguments: --shard_id must be in 0..{shards - 1} with --num_shards {shards} >= 1")
    if getattr(args, "num_workers", 0) < 0:
        raise BadInputError(f"bad arguments: --num_workers must be 0 or more, got {args.num_workers}")
    if not 1 <= getattr(args, "jpg_quality", 95) <= 100:
        raise BadInputError(f"bad arguments: --jpg_quality must be in 1..100, got {args.jpg_quality}")
    missing = [root for root in split_roots(getattr(args, "video_root", None)) if not os.path.isdir(root)]
    if missing:  # a typo would otherwise fail every row as a missing video
        raise BadInputError(f"bad arguments: --video_root {', '.join(missing)}: no such folder")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m cv_reader` and the `cv_reader` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted) if main_thread else None
    try:
        check_command_arguments(args)
        return int(args.func(args) or 0)
    except BadInputError as err:
        logger.error("%s", err)
        print(f"[cv_reader {args.command}] input refused: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as err:  # (a traceback here would only say where the main thread was waiting)
        signum = getattr(err, "signum", signal.SIGINT)
        logger.error("interrupted (%s): the items finished so far are kept, a rerun resumes after them",
                     signal.Signals(signum).name)  # fmt: skip
        return 128 + signum
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
