"""File formats and names: stage-1 files, stage-2 packs and training JSONL, eval assets (spec 7, 8, 9).

Every write goes to a temporary file in the destination folder and is renamed into place (`os.replace`), so a
killed run never leaves a half-written file that a resumed run would take as finished.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"
EVAL_META_VERSION = "llava_codec_offline_precompute_v1"

logger = logging.getLogger(__name__)


def sha1_hex(text: str) -> str:
    """sha1 of a UTF-8 string (upstream hashes the path string as written, spec 7). A file name that is not valid
    UTF-8 reaches Python with its undecodable bytes as lone surrogates (PEP 383); those hash as the original bytes."""
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()


def json_text(obj: object, *, indent: int | None = None) -> str:
    """`json.dumps(obj, ensure_ascii=False)`, or with `ensure_ascii=True` when a string holds a lone surrogate (a
    file name that is not valid UTF-8, PEP 383): UTF-8 cannot encode those, and the escaped form reads back as the
    same Python string, so the path still opens."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, ensure_ascii=True, indent=indent)
    return text


_TEMP_TAG = ".cvtmp-"
_TEMP_NAME = re.compile(r"^\..+\.cvtmp-(?P<host>[A-Za-z0-9]*)-(?P<pid>\d+)\.tmp$")
STALE_TEMP_AGE_S = 24 * 3600  # temp files of other machines (shared file systems) count as stale after this


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def _current_umask() -> int:
    """The process umask, read without changing it where /proc allows (`os.umask` sets it, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder + rename: the package's one writer.

    The file gets the permissions of a plain `open(path, "w")` (0o666 minus the umask; `mkstemp` alone gives 0o600,
    unreadable by other users and containers). The temp name carries host and pid, so a later run can tell the
    leftovers of a killed run (`remove_stale_temps`) from the live temp files of a concurrent shard.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name[:120]}.", suffix=f"{_TEMP_TAG}{_host_tag()}-{os.getpid()}.tmp"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_current_umask())
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(directory: str | Path) -> int:
    """Delete the temp files that `atomic_write_bytes` left in `directory` (not recursive) when its process died:
    same host and the pid no longer runs, or older than `STALE_TEMP_AGE_S`. Returns how many were removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    host, removed = _host_tag(), 0
    now = time.time()
    for entry in os.scandir(directory):
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        dead = match["host"] == host and not _pid_alive(int(match["pid"]))
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_AGE_S
        except FileNotFoundError:  # renamed meanwhile by its (live) writer
            continue
        if dead or old:
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.info("%s: removed %d stale temp file(s) of an interrupted run", directory, removed)
    return removed


_UNSAFE = re.compile(r"[^\w.+=@,-]")  # \w: letters and digits of any script, and "_"
MAX_NAME_PART = 64  # bytes: two parts + hashes + suffixes stay well under the 255-byte name limit


def safe_name(text: str) -> str:
    """`text` made usable as one path component that stays inside its folder: separators and other unsafe
    characters become `_`, a leading dot (`.`, `..`, hidden names) gets a `_` before it, and a changed or too
    long value gets a hash of the original, so two ids that differ only in unsafe characters keep distinct names.
    Plain ids (`s0`, `video_12`, `视频`) are unchanged, so upstream file names stay the same."""
    text = str(text)
    clean = _UNSAFE.sub("_", text)
    if not clean or clean.startswith("."):
        clean = "_" + clean
    if clean == text and len(clean.encode("utf-8")) <= MAX_NAME_PART:
        return clean
    while len(clean.encode("utf-8")) > MAX_NAME_PART - 11:
        clean = clean[:-1]
    return f"{clean}_{sha1_hex(text)[:10]}"


def inside(root: str | Path, path: str | Path) -> Path:
    """`path`, after checking that it resolves inside `root` (defence in depth behind `safe_name`)."""
    root_abs = Path(os.path.abspath(root))
    path_abs = Path(os.path.abspath(path))
    if path_abs != root_abs and root_abs not in path_abs.parents:
        raise ValueError(f"refusing to write {path}: outside the output root {root}")
    return Path(path)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Atomic `np.save`."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def save_json(path: str | Path, obj: dict) -> None:
    """Atomic JSON (UTF-8, indented, `json_text`)."""
    atomic_write_bytes(path, json_text(obj, indent=2).encode("utf-8"))


def save_jpeg(path: str | Path, image: np.ndarray, *, quality: int = 95) -> None:
    """Atomic JPEG of a uint8 [H, W, 3] RGB array (upstream quality 95)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    atomic_write_bytes(path, buffer.getvalue())


def write_lines(path: str | Path, lines: Sequence[str]) -> None:
    """Atomic text file of `lines` (each without its newline), UTF-8; the undecodable bytes of a file name that is not
    valid UTF-8 (lone surrogates, PEP 383) are written back as those bytes, as `ls` or `find` would list it."""
    atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape"))


# ----------------------------------------------------------------------------------------------- stage 1 (spec 7)
def stage1_prefix(
    out_root: str | Path,
    *,
    sample_id: str,
    video: str,
    row_idx: int,
    T: int,
    square_size: int,
    patch_size: int,
    K: int,
) -> Path:
    """Upstream stage-1 file prefix: `sample_{id}__{stem}__{sha1(video)[:8]}__{sha1(key)[:8]}_T.._square.._p.._K..`
    where key = f"{video}|{id}|{row_idx}". Hashes use the path string as written."""
    key = sample_key(sample_id, video, row_idx=row_idx)
    name = (
        f"sample_{safe_name(sample_id)}__{safe_name(Path(video).stem)}__{sha1_hex(str(video))[:8]}__"
        f"{sha1_hex(key)[:8]}"
        f"_T{T}_square{square_size}_p{patch_size}_K{K}"
    )
    return inside(out_root, Path(out_root) / name)


def sample_key(sample_id: str, video: str, *, row_idx: int) -> str:
    """`{video}|{id}|{row_idx}`: unique per dataset row (spec 7), also the sharding key."""
    return f"{video}|{sample_id}|{row_idx}"


def stage1_paths(prefix: Path) -> dict[str, Path]:
    """The three stage-1 files of a prefix."""
    return {k: prefix.with_name(prefix.name + f".{k}") for k in ("visidx_thw.npy", "frame_ids.npy", "meta.json")}


def stage1_meta(
    *, sample_id: str, key: str, video: str, sel_meta: dict, keep_frames_equiv: int, padding_policy: str = "zero"
) -> dict:
    """Upstream stage-1 `meta.json` keys (spec 7) plus a `cv_reader` block with this package's details."""
    pad = sel_meta["pad_info"]
    return {
        "sample_id": sample_id,
        "sample_key": key,
        "video": video,
        "T": sel_meta["T"],
        "frame_ids": None,
        "preprocess": f"square{sel_meta['square_size']}",
        "square_size": sel_meta["square_size"],
        "patch": sel_meta["patch_size"],
        "keep_frames_equiv": keep_frames_equiv,
        "padding_policy": padding_policy,
        "keep_uniform_first": False,
        "keep_first_full_frame": sel_meta["keep_first_full_frame"],
        "H0": sel_meta["H0"],
        "W0": sel_meta["W0"],
        "pad_info": pad,
        "hb": sel_meta["grid"],
        "wb": sel_meta["grid"],
        "S_total": sel_meta["S_total"],
        "S_valid": sel_meta["S_valid"],
        "K": sel_meta["K"],
        "padding_patch_filtered": sel_meta["padding_picked"] == 0,
        "valid_ranges": sel_meta["valid_ranges"],
        "cv_reader": sel_meta,
    }


# ----------------------------------------------------------------------------------- stage 2 / training (spec 8)
def pack_dir(out_image_root: str | Path, *, sample_id: str, video: str) -> Path:
    """`{root}/sample_{id}__{stem}__{sha1(video)[:8]}` (upstream stage-2 layout)."""
    name = f"sample_{safe_name(sample_id)}__{safe_name(Path(video).stem)}__{sha1_hex(str(video))[:8]}"
    return inside(out_image_root, Path(out_image_root) / name)


def pack_image_paths(directory: Path, *, video: str, num_images: int) -> list[Path]:
    """`{dir}/{stem}_{i:03d}.jpg` for i < num_images."""
    stem = safe_name(Path(video).stem)
    return [directory / f"{stem}_{i:03d}.jpg" for i in range(num_images)]


def frame_lines(num_images: int) -> str:
    """A video of `num_images` mosaics as the training JSONL writes it: `num_images` `<image>` lines joined by
    newlines (spec 8.7). llava's prompt module (`llava.model.llava_ov.chat_format.frame_lines`) reads and writes the
    same text; a test keeps the two equal (cv_reader cannot import llava)."""
    return "\n".join([IMAGE_TOKEN] * num_images)


def rewrite_conversations(conversations: list[dict], num_images: int) -> list[dict]:
    """Replace the first `<video>` of the first human turn by `num_images` `<image>` lines (spec 8.7).

    A turn that already holds `<image>` is left alone; with neither token the image lines are prepended.
    """
    out = [dict(turn) for turn in conversations]
    tokens = frame_lines(num_images)
    for turn in out:
        if turn.get("from") != "human":
            continue
        value = turn.get("value", "")
        if VIDEO_TOKEN in value:
            turn["value"] = value.replace(VIDEO_TOKEN, tokens, 1)
        elif IMAGE_TOKEN not in value:
            turn["value"] = tokens + "\n" + value
        break
    return out


def training_record(item: dict, *, images: list[Path], positions: Path | None) -> dict:
    """One training JSONL record: `id, conversations, image, positions_thw` (raw `video`, `data_source` dropped;
    `positions_thw` only when written)."""
    record = {
        "id": item.get("id"),
        "conversations": rewrite_conversations(item.get("conversations", []), len(images)),
        "image": [str(p) for p in images],
    }
    if positions is not None:
        record["positions_thw"] = str(positions)
    return record


# ------------------------------------------------------------------------------------------ eval assets (spec 9)
def asset_key(video: str | Path, root: str | Path | None = None) -> str:
    """A key that cannot collide: `{stem}__{sha1(path relative to root, or as written)[:10]}`.

    Upstream keyed assets by stem, so two videos with the same file name served each other's mosaics (spec 13.6).
    """
    video = str(video)
    rel = video
    if root is not None:
        try:
            rel = os.path.relpath(os.path.abspath(video), os.path.abspath(root))
        except ValueError:  # different drives on Windows
            rel = video
    return f"{safe_name(Path(video).stem)}__{sha1_hex(rel)[:10]}"


EVAL_FILES = ("positions_thw.npy", "visible_indices.npy", "frame_ids.npy", "meta.json")


def eval_assets_complete(directory: Path, num_images: int) -> bool:
    """True when every eval asset file exists (`meta.json` is written last, so it marks completion)."""
    names = [f"mosaic_{i:03d}.jpg" for i in range(num_images)] + list(EVAL_FILES)
    return all((directory / n).is_file() for n in names)


def write_eval_assets(
    directory: Path,
    *,
    mosaics: list[np.ndarray],
    positions_thw: np.ndarray,
    visible_indices: np.ndarray,
    frame_ids: np.ndarray,
    meta: dict,
    jpg_quality: int = 95,
) -> None:
    """`assets/<key>/`: `mosaic_000..N.jpg`, `positions_thw.npy` int32 [K,3], `visible_indices.npy` int64 [K],
    `frame_ids.npy` int32 [T], then `meta.json` last (spec 9)."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(mosaics):
        save_jpeg(directory / f"mosaic_{i:03d}.jpg", image, quality=jpg_quality)
    save_npy(directory / "positions_thw.npy", positions_thw.astype(np.int32))
    save_npy(directory / "visible_indices.npy", visible_indices.astype(np.int64))
    save_npy(directory / "frame_ids.npy", frame_ids.astype(np.int32))
    (directory / "error.json").unlink(missing_ok=True)
    save_json(directory / "meta.json", meta)
