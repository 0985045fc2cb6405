"""File formats and names: stage-1 files, stage-2 packs and training JSONL, eval assets (spec 7, 8, 9).

Every write goes to a temporary file in the destination folder and is renamed into place (`os.replace`), so a
killed run never leaves a half-written file that a resumed run would take as finished.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"
EVAL_META_VERSION = "llava_codec_offline_precompute_v1"


def sha1_hex(text: str) -> str:
    """sha1 of a UTF-8 string (upstream hashes the path string as written, spec 7)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Atomic `np.save`."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def save_json(path: str | Path, obj: dict) -> None:
    """Atomic JSON (UTF-8, indented, `ensure_ascii=False`)."""
    atomic_write_bytes(path, json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8"))


def save_jpeg(path: str | Path, image: np.ndarray, quality: int = 95) -> None:
    """Atomic JPEG of a uint8 [H, W, 3] RGB array (upstream quality 95)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    atomic_write_bytes(path, buffer.getvalue())


def write_lines(path: str | Path, lines: Sequence[str]) -> None:
    """Atomic text file of `lines` (each without its newline)."""
    atomic_write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))


# ----------------------------------------------------------------------------------------------- stage 1 (spec 7)
def stage1_prefix(out_root: str | Path, sample_id: str, video: str, row_idx: int, *, T: int, square_size: int,
                  patch_size: int, K: int) -> Path:
    """Upstream stage-1 file prefix: `sample_{id}__{stem}__{sha1(video)[:8]}__{sha1(key)[:8]}_T.._square.._p.._K..`
    where key = f"{video}|{id}|{row_idx}". Hashes use the path string as written."""
    key = sample_key(sample_id, video, row_idx)
    name = (f"sample_{sample_id}__{Path(video).stem}__{sha1_hex(str(video))[:8]}__{sha1_hex(key)[:8]}"
            f"_T{T}_square{square_size}_p{patch_size}_K{K}")
    return Path(out_root) / name


def sample_key(sample_id: str, video: str, row_idx: int) -> str:
    """`{video}|{id}|{row_idx}`: unique per dataset row (spec 7), also the sharding key."""
    return f"{video}|{sample_id}|{row_idx}"


def stage1_paths(prefix: Path) -> dict[str, Path]:
    """The three stage-1 files of a prefix."""
    return {k: prefix.with_name(prefix.name + f".{k}") for k in ("visidx_thw.npy", "frame_ids.npy", "meta.json")}


def stage1_meta(*, sample_id: str, key: str, video: str, sel_meta: dict, keep_frames_equiv: int,
                padding_policy: str = "zero") -> dict:
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
def pack_dir(out_image_root: str | Path, sample_id: str, video: str) -> Path:
    """`{root}/sample_{id}__{stem}__{sha1(video)[:8]}` (upstream stage-2 layout)."""
    return Path(out_image_root) / f"sample_{sample_id}__{Path(video).stem}__{sha1_hex(str(video))[:8]}"


def pack_image_paths(directory: Path, video: str, num_images: int) -> list[Path]:
    """`{dir}/{stem}_{i:03d}.jpg` for i < num_images."""
    stem = Path(video).stem
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


def training_record(item: dict, images: list[Path], positions: Path) -> dict:
    """One training JSONL record: `id, conversations, image, positions_thw` (raw `video`, `data_source` dropped)."""
    return {
        "id": item.get("id"),
        "conversations": rewrite_conversations(item.get("conversations", []), len(images)),
        "image": [str(p) for p in images],
        "positions_thw": str(positions),
    }


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
    return f"{Path(video).stem}__{sha1_hex(rel)[:10]}"


EVAL_FILES = ("positions_thw.npy", "visible_indices.npy", "frame_ids.npy", "meta.json")


def eval_assets_complete(directory: Path, num_images: int) -> bool:
    """True when every eval asset file exists (`meta.json` is written last, so it marks completion)."""
    names = [f"mosaic_{i:03d}.jpg" for i in range(num_images)] + list(EVAL_FILES)
    return all((directory / n).is_file() for n in names)


def write_eval_assets(directory: Path, *, mosaics: list[np.ndarray], positions_thw: np.ndarray,
                      visible_indices: np.ndarray, frame_ids: np.ndarray, meta: dict, jpg_quality: int = 95) -> None:
    """`assets/<key>/`: `mosaic_000..N.jpg`, `positions_thw.npy` int32 [K,3], `visible_indices.npy` int64 [K],
    `frame_ids.npy` int32 [T], then `meta.json` last (spec 9)."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(mosaics):
        save_jpeg(directory / f"mosaic_{i:03d}.jpg", image, jpg_quality)
    save_npy(directory / "positions_thw.npy", positions_thw.astype(np.int32))
    save_npy(directory / "visible_indices.npy", visible_indices.astype(np.int64))
    save_npy(directory / "frame_ids.npy", frame_ids.astype(np.int32))
    (directory / "error.json").unlink(missing_ok=True)
    save_json(directory / "meta.json", meta)
