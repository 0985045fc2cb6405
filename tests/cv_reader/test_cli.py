"""Batch CLIs in-process (`main(argv)`): file names, formats, JSONL rewrite, resume, failures, shards, keys."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cv_reader import positions_from_visidx
from cv_reader.assets import rewrite_conversations, sha1_hex
from cv_reader.cli import main

from .synth import moving_object_clip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, moving_clip):
    root = tmp_path_factory.mktemp("dataset")
    videos = root / "videos"
    (videos / "a").mkdir(parents=True)
    (videos / "b").mkdir(parents=True)
    shutil.copy(moving_clip.path, videos / "a" / "clip.mp4")
    moving_object_clip(videos / "b" / "clip.mp4", num_frames=30, seed=21)  # same stem, other video
    (videos / "broken.mp4").write_text("not a video")
    conv = [{"from": "human", "value": "<video>\nWhat moves?"}, {"from": "gpt", "value": "A square."}]
    rows = [
        {"id": "s0", "video": "a/clip.mp4", "conversations": conv, "data_source": "synthetic"},
        {"id": "s1", "video": "b/clip.mp4", "conversations": conv},
        {"id": "bad", "video": "broken.mp4", "conversations": conv},
    ]
    path = root / "data.json"
    path.write_text(json.dumps(rows))
    return {"root": root, "json": path, "videos": videos, "rows": rows}


def _run(argv: list[str]) -> int:
    return main(["--log_level", "ERROR", *argv])


def _pack_argv(data: Path, out: Path, *extra: str) -> list[str]:
    """`pack` of dataset `data` into `out`/packs and `out`/train.jsonl."""
    return [
        "pack",
        "--input_json",
        str(data),
        "--out_image_root",
        str(out / "packs"),
        "--out_jsonl",
        str(out / "train.jsonl"),
        *extra,
    ]


def test_stage1_then_stage2(dataset, tmp_path, capsys):
    out1 = tmp_path / "stage1"
    args = [
        "stage1",
        "--input_json",
        str(dataset["json"]),
        "--out_root",
        str(out1),
        "--video_root",
        str(dataset["videos"]),
        "--keep_first_full_frame",
        "--padding_policy",
        "zero",
    ]
    assert _run(args) == 1  # one item failed: the exit status says so
    metas = sorted(out1.glob("*.meta.json"))
    assert len(metas) == 2
    name = metas[0].name
    key = "a/clip.mp4|s0|0"
    expected = f"sample_s0__clip__{sha1_hex('a/clip.mp4')[:8]}__{sha1_hex(key)[:8]}_T64_square576_p16_K10368"
    assert name == expected + ".meta.json"
    visidx = np.load(out1 / f"{expected}.visidx_thw.npy")
    frame_ids = np.load(out1 / f"{expected}.frame_ids.npy")
    assert visidx.dtype == np.int32 and visidx.shape == (10368, 3)
    assert frame_ids.dtype == np.int32 and frame_ids.shape == (64,)
    meta = json.loads(metas[0].read_text())
    for k in (
        "sample_id",
        "sample_key",
        "video",
        "T",
        "frame_ids",
        "preprocess",
        "square_size",
        "patch",
        "keep_frames_equiv",
        "padding_policy",
        "keep_uniform_first",
        "keep_first_full_frame",
        "H0",
        "W0",
        "pad_info",
        "hb",
        "wb",
        "S_total",
        "S_valid",
        "K",
        "padding_patch_filtered",
        "valid_ranges",
    ):
        assert k in meta, k
    assert meta["sample_key"] == key and meta["preprocess"] == "square576" and meta["frame_ids"] is None
    failed = (out1 / "stage1_failed.shard00of01.txt").read_text().splitlines()
    assert len(failed) == 1 and failed[0].startswith("bad\tbroken.mp4\t") and "broken.mp4" in failed[0]
    assert "2 done, 0 skipped (already done), 1 failed" in capsys.readouterr().out

    # Resume: nothing is redone.
    mtime = metas[0].stat().st_mtime_ns
    assert _run(args) == 1
    assert "0 done, 2 skipped" in capsys.readouterr().out
    assert metas[0].stat().st_mtime_ns == mtime

    images, out_jsonl = tmp_path / "packs", tmp_path / "train.jsonl"
    assert (
        _run(
            [
                "stage2",
                "--mode",
                "pack",
                "--input_json",
                str(dataset["json"]),
                "--stage1_root",
                str(out1),
                "--out_image_root",
                str(images),
                "--out_jsonl",
                str(out_jsonl),
                "--video_root",
                str(dataset["videos"]),
                "--num_images",
                "8",
                "--T",
                "64",
                "--patch",
                "16",
                "--write_positions",
                "--first_full",
            ]
        )
        == 1
    )
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["s0", "s1"]
    first = lines[0]
    assert set(first) == {"id", "conversations", "image", "positions_thw"}
    assert first["conversations"][0]["value"] == "\n".join(["<image>"] * 8) + "\nWhat moves?"
    pack = images / f"sample_s0__clip__{sha1_hex('a/clip.mp4')[:8]}"
    assert first["image"] == [str(pack / f"clip_{i:03d}.jpg") for i in range(8)]
    positions = np.load(first["positions_thw"])
    assert positions.dtype == np.int32
    np.testing.assert_array_equal(positions, positions_from_visidx(visidx))
    assert all(Image.open(p).size == (576, 576) for p in first["image"])
    fail = Path(str(out_jsonl) + ".fail.txt").read_text()
    assert "broken.mp4" in fail


def test_pack_one_step_and_precompute_keys(dataset, tmp_path, capsys):
    out_jsonl = tmp_path / "train.jsonl"
    assert (
        _run(
            [
                "pack",
                "--input_json",
                str(dataset["json"]),
                "--out_image_root",
                str(tmp_path / "packs"),
                "--out_jsonl",
                str(out_jsonl),
                "--video_root",
                str(dataset["videos"]),
            ]
        )
        == 1
    )
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert len(lines) == 2 and len(lines[1]["image"]) == 8
    pack_dir = Path(lines[0]["positions_thw"]).parent
    visidx = np.load(pack_dir / "visidx_thw.npy")
    np.testing.assert_array_equal(np.load(lines[0]["positions_thw"]), positions_from_visidx(visidx))
    mosaic0 = np.asarray(Image.open(lines[0]["image"][0]))
    assert mosaic0.shape == (576, 576, 3) and mosaic0.mean() > 20

    listing = tmp_path / "videos.jsonl"
    vids = [
        dataset["videos"] / "a" / "clip.mp4",
        dataset["videos"] / "b" / "clip.mp4",
        dataset["videos"] / "broken.mp4",
    ]
    listing.write_text("".join(json.dumps({"video": str(v), "key": v.stem}) + "\n" for v in vids))
    out = tmp_path / "eval"
    assert (
        _run(
            [
                "precompute",
                "--videos_jsonl",
                str(listing),
                "--out_root",
                str(out),
                "--task",
                "synthetic",
                "--num_workers",
                "2",
                "--video_root",
                str(dataset["videos"]),
            ]
        )
        == 1
    )
    keys = sorted(p.name for p in (out / "assets").iterdir())
    assert len(keys) == 3 and len({k.split("__")[0] for k in keys}) == 2  # same stem, distinct keys
    done = [out / "assets" / k for k in keys if (out / "assets" / k / "meta.json").exists()]
    assert len(done) == 2
    for d in done:
        assert sorted(p.name for p in d.glob("mosaic_*.jpg")) == [f"mosaic_{i:03d}.jpg" for i in range(8)]
        pos = np.load(d / "positions_thw.npy")
        vis = np.load(d / "visible_indices.npy")
        fid = np.load(d / "frame_ids.npy")
        assert pos.dtype == np.int32 and pos.shape == (10368, 3)
        assert vis.dtype == np.int64 and np.array_equal(vis, pos[:, 0] * 1296 + pos[:, 1] * 36 + pos[:, 2])
        assert fid.dtype == np.int32 and fid.shape == (64,)
        meta = json.loads((d / "meta.json").read_text())
        assert meta["version"] == "llava_codec_offline_precompute_v1" and meta["key"] == d.name
        assert not list(d.glob(".*tmp"))  # no temp files left
    errors = [out / "assets" / k / "error.json" for k in keys if (out / "assets" / k / "error.json").exists()]
    assert len(errors) == 1 and "broken.mp4" in json.loads(errors[0].read_text())["video"]
    capsys.readouterr()
    assert (
        _run(
            [
                "precompute",
                "--videos_jsonl",
                str(listing),
                "--out_root",
                str(out),
                "--task",
                "synthetic",
                "--video_root",
                str(dataset["videos"]),
            ]
        )
        == 1
    )
    assert "0 done, 2 skipped (already done), 1 failed" in capsys.readouterr().out
    # Upstream stem keys collide here: refused instead of serving one video's mosaics for the other.
    assert _run(["precompute", "--videos_jsonl", str(listing), "--out_root", str(out), "--key_mode", "stem"]) == 2
    assert "collides" in capsys.readouterr().err


def test_shards_partition_the_dataset(dataset, tmp_path):
    seen = []
    for shard in range(2):
        out = tmp_path / f"shard{shard}"
        assert _run(
            [
                "stage1",
                "--input_json",
                str(dataset["json"]),
                "--out_root",
                str(out),
                "--video_root",
                str(dataset["videos"]),
                "--num_shards",
                "2",
                "--shard_id",
                str(shard),
                "--sequence_length",
                "16",
                "--keep_frames_equiv",
                "2",
                "--square_size",
                "128",
            ]
        ) in (0, 1)
        seen.append({p.name for p in out.glob("*.meta.json")})
        assert (out / f"stage1_failed.shard{shard:02d}of02.txt").exists()
    assert not (seen[0] & seen[1]) and len(seen[0] | seen[1]) == 2


def test_visualize_writes_png_and_gif(moving_clip, tmp_path):
    out = tmp_path / "fig.png"
    assert _run(["visualize", str(moving_clip.path), "--out", str(out), "--gif"]) == 0
    image = Image.open(out)
    assert image.size[0] > 800 and image.size[1] > 500
    gif = Image.open(out.with_suffix(".gif"))
    assert gif.n_frames == 64


def test_visualize_reports_a_bad_video_without_traceback(tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    assert _run(["visualize", str(broken), "--out", str(tmp_path / "fig.png")]) == 1
    err = capsys.readouterr().err
    assert "broken.mp4: not_a_video" in err and "Traceback" not in err
    assert not (tmp_path / "fig.png").exists()


def test_rewrite_conversations_rules():
    conv = [{"from": "human", "value": "<video>\nQ <video>"}, {"from": "gpt", "value": "A"}]
    assert rewrite_conversations(conv, 2)[0]["value"] == "<image>\n<image>\nQ <video>"
    assert rewrite_conversations([{"from": "human", "value": "<image>\nQ"}], 2)[0]["value"] == "<image>\nQ"
    assert rewrite_conversations([{"from": "human", "value": "Q"}], 2)[0]["value"] == "<image>\n<image>\nQ"
    assert conv[0]["value"] == "<video>\nQ <video>"  # input untouched


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "cv_reader", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("stage1", "stage2", "pack", "precompute", "visualize"):
        assert command in result.stdout


def test_file_names_that_are_not_utf8(moving_clip, tmp_path):
    """Old archives hold file names in Latin-1 and the like: Python sees their undecodable bytes as lone surrogates
    (PEP 383), which UTF-8 cannot encode. Hashing, JSON and the fail lists once raised UnicodeEncodeError on them."""
    videos = tmp_path / "videos"
    videos.mkdir()
    good = videos / os.fsdecode(b"caf\xe9.mp4")
    bad = videos / os.fsdecode(b"ann\xe9e.mp4")
    shutil.copy(moving_clip.path, good)
    bad.write_text("not a video")
    conv = [{"from": "human", "value": "<video>\nWhat moves?"}, {"from": "gpt", "value": "A square."}]
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": n, "video": v.name, "conversations": conv}) + "\n" for n, v in (("g", good), ("b", bad))
        )
    )
    root = ["--video_root", str(videos)]

    out_jsonl = tmp_path / "train.jsonl"
    assert _run(_pack_argv(data, tmp_path, *root)) == 1
    records = [json.loads(line) for line in out_jsonl.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ["g"]
    assert all(Path(image).is_file() for image in records[0]["image"])
    fail_list = (tmp_path / "train.jsonl.fail.txt").read_bytes()
    assert b"ann\xe9e.mp4" in fail_list  # the name as its bytes, as `ls` shows it

    assert _run(["stage1", "--input_json", str(data), "--out_root", str(tmp_path / "s1"), *root]) == 1
    (meta,) = (tmp_path / "s1").glob("*.meta.json")
    assert json.loads(meta.read_text(encoding="utf-8"))["video"] == good.name

    out = tmp_path / "eval"
    assert _run(["precompute", "--videos", str(good), str(bad), "--out_root", str(out)]) == 1
    metas = list((out / "assets").glob("*/meta.json"))
    assert len(metas) == 1 and json.loads(metas[0].read_text(encoding="utf-8"))["video"] == str(good)
    assert sha1_hex(str(good)) == hashlib.sha1(os.fsencode(good)).hexdigest()  # the file name's own bytes


def test_rows_whose_conversations_cannot_be_rewritten_fail_alone(moving_clip, tmp_path, caplog):
    conv = [{"from": "human", "value": "<video>\nWhat moves?"}, {"from": "gpt", "value": "A square."}]
    rows = [
        {"id": "good", "video": "clip.mp4", "conversations": conv},
        {"id": "text", "video": "clip.mp4", "conversations": "What moves?"},
        {"id": "turn", "video": "clip.mp4", "conversations": ["What moves?"]},
        {"id": "value", "video": "clip.mp4", "conversations": [{"from": "human", "value": None}]},
        {"id": "picture", "image": "photo.jpg", "conversations": conv},
    ]
    shutil.copy(moving_clip.path, tmp_path / "clip.mp4")
    data = tmp_path / "data.json"
    data.write_text(json.dumps(rows))
    out_jsonl = tmp_path / "train.jsonl"
    with caplog.at_level("WARNING", logger="cv_reader"):
        assert main(_pack_argv(data, tmp_path)) == 1
    assert [json.loads(line)["id"] for line in out_jsonl.read_text().splitlines()] == ["good"]
    failures = (tmp_path / "train.jsonl.fail.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failures] == ["text", "turn", "value"]
    assert "'conversations' must be a list" in failures[0] and "conversations[0] must be an object" in failures[1]
    assert "conversations[0].value must be a string" in failures[2]
    assert "1 of 5 rows have no 'video'" in caplog.text  # the image row is not silently dropped
