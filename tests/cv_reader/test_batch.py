"""Batch robustness: a killed worker, exit status, resume with other parameters, unsafe ids, permissions, stale
temp files, non-object rows, relative output roots, and the options the batch commands accept."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cv_reader import assets, decode
from cv_reader.batch import WORKER_DIED, decoder_threads_per_worker, run_jobs
from cv_reader.cli import build_parser, load_dataset, main

from ..polling import wait_for
from .synth import moving_object_clip

SMALL = ["--T", "8", "--num_images", "2", "--square_size", "64", "--patch", "16"]
# the same small geometry in stage 1's (upstream) option names
STAGE1_SMALL = ["--sequence_length", "8", "--keep_frames_equiv", "2", "--square_size", "64"]
CONV = [{"from": "human", "value": "<video>\nWhat moves?"}, {"from": "gpt", "value": "A square."}]


def _work_or_die(job: dict) -> dict:
    """Pool work for the kill test: the marked job kills its own worker process for real (as the OOM killer would)."""
    if job["die"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"value": job["n"] * 10}


def _sleepy(job: dict) -> dict:
    """Pool work for the interruption tests: logs, says which process runs it, then takes a minute."""
    import logging

    logging.getLogger("cv_reader.test").warning("item %d started", job["n"])
    Path(job["dir"], f"{os.getpid()}.pid").write_text("")
    time.sleep(60)
    return {}


# A batch command whose items take a minute each (the pool work is `_sleepy`): the interruption tests signal it.
_SLOW_COMMAND = """
import sys
from cv_reader import cli
from cv_reader.batch import run_jobs
from tests.cv_reader.test_batch import _sleepy

def slow_jobs(work, jobs, *, num_workers, desc):
    return run_jobs(_sleepy, [{**job, "n": n, "dir": sys.argv[1]} for n, job in enumerate(jobs)],
                    num_workers=num_workers, desc=desc)

cli.run_jobs = slow_jobs
sys.exit(cli.main(sys.argv[2:]))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")  # a zombie (not yet reaped by its new parent) counts as gone
    return not (status.is_file() and status.read_text().split(")")[-1].split()[0] == "Z")


def _start_slow_run(tiny_dataset: Path, tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    """`stage1` of 4 slow items with 2 workers, in its own session; returns once both workers are busy."""
    data = tmp_path / "rows.json"
    data.write_text(json.dumps([{"id": f"s{n}", "video": "clip.mp4"} for n in range(4)]))
    pids = tmp_path / "pids"
    pids.mkdir()
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "Compressed_Video_Reader")])}
    argv = ["stage1", "--input_json", str(data), "--video_root", str(tiny_dataset), "--out_root",
            str(tmp_path / "out"), "--num_workers", "2", *STAGE1_SMALL]  # fmt: skip
    run = subprocess.Popen([sys.executable, "-c", _SLOW_COMMAND, str(pids), *argv], env=env, stderr=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    assert wait_for(lambda: len(list(pids.glob("*.pid"))) == 2, seconds=60, every=0.1), run.communicate(timeout=60)
    return run, [int(p.stem) for p in pids.glob("*.pid")]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_run_stops_its_workers_and_says_so(tiny_dataset, tmp_path, signum, status):
    """SIGTERM to the batch process alone (as `kill` or a job scheduler sends it), or Ctrl-C (SIGINT to the whole
    process group, as a terminal sends it): the run stops at once with 128 + the signal, one log line and no
    traceback, and takes its workers with it (they used to be left blocked forever on their task pipe). The
    workers log in the parent's format."""
    run, workers = _start_slow_run(tiny_dataset, tmp_path)
    if signum == signal.SIGINT:
        os.killpg(run.pid, signum)
    else:
        os.kill(run.pid, signum)
    _, err = run.communicate(timeout=30)
    assert run.returncode == status, err
    assert "Traceback" not in err and f"interrupted ({signal.Signals(signum).name})" in err
    assert "WARNING cv_reader.test: item" in err  # the workers' log records, formatted as the parent's
    assert wait_for(lambda: not any(_alive(pid) for pid in workers), seconds=10, every=0.1), [
        p for p in workers if _alive(p)
    ]


def test_workers_end_when_their_parent_is_killed(tiny_dataset, tmp_path):
    """SIGKILL to the batch process (the OOM killer, `kill -9`): its workers notice and end within seconds."""
    run, workers = _start_slow_run(tiny_dataset, tmp_path)
    os.kill(run.pid, signal.SIGKILL)
    run.communicate(timeout=30)
    assert wait_for(lambda: not any(_alive(pid) for pid in workers), seconds=15, every=0.1), [
        p for p in workers if _alive(p)
    ]


def _decoder_threads(job: dict) -> dict:
    """Pool work: the decoder thread count the worker process was given."""
    return {"threads": decode._decoder_threads}


def _run(argv: list[str]) -> int:
    return main(["--log_level", "ERROR", *argv])


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    moving_object_clip(root / "clip.mp4", num_frames=12, height=48, width=64, obj=12, seed=2)
    rows = [{"id": "s0", "video": "clip.mp4", "conversations": CONV}]
    (root / "data.json").write_text(json.dumps(rows))
    return root


def test_killed_worker_fails_only_its_item():
    jobs = [{"n": n, "die": n == 2} for n in range(6)]
    results = list(run_jobs(_work_or_die, jobs, num_workers=2, desc="test"))
    assert sorted(r["job"]["n"] for r in results) == list(range(6))
    by_n = {r["job"]["n"]: r for r in results}
    assert by_n[2]["status"] == "failed" and by_n[2]["error"] == WORKER_DIED
    for n in (0, 1, 3, 4, 5):
        assert by_n[n]["status"] == "ok" and by_n[n]["value"] == n * 10
    # Results carry the caller's job objects: a job (with its dataset row) is not pickled back and held twice.
    assert all(by_n[n]["job"] is jobs[n] for n in range(6))


def test_pool_workers_share_the_cores_among_their_decoders(monkeypatch):
    """N workers each decoding with a thread per core would run N x cores threads (and a frame-threaded decoder
    holds a picture per thread): each worker gets cores // N, at least one."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert [decoder_threads_per_worker(n) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    monkeypatch.undo()
    cores = len(os.sched_getaffinity(0))
    results = list(run_jobs(_decoder_threads, [{"n": n} for n in range(2)], num_workers=2, desc="test"))
    assert [r["threads"] for r in results] == [max(1, cores // 2)] * 2
    assert decode._decoder_threads == 0  # this process keeps FFmpeg's automatic count


def test_process_cores_is_a_workers_share_or_the_cpus(monkeypatch):
    """The cores a selection's threads have (`select_patches` stores small frames' canvases between the energies on
    two): a batch worker's share of the cores when set, else the CPUs this process may run on."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert decode.available_cpus() == 8 and decode.process_cores() == 8
    monkeypatch.setattr(decode, "_decoder_threads", 1)
    assert decode.process_cores() == 1


def test_exit_status_and_help(tiny_dataset, tmp_path, capsys):
    assert (
        _run(
            [
                "pack",
                "--input_json",
                str(tmp_path / "missing.json"),
                "--out_image_root",
                str(tmp_path / "i"),
                "--out_jsonl",
                str(tmp_path / "o.jsonl"),
            ]
        )
        == 2
    )
    (tmp_path / "object.json").write_text('{"id": 1}')
    assert _run(["stage1", "--input_json", str(tmp_path / "object.json"), "--out_root", str(tmp_path / "s")]) == 2
    assert "expected a JSON list" in capsys.readouterr().err
    help_text = build_parser().format_help()
    assert "exit status" in help_text and "1 at least one item failed" in help_text
    for command in ("stage1", "stage2", "pack", "precompute"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        assert "exit status" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:  # offered no more: argparse refuses it
        build_parser().parse_args(
            [
                "stage2",
                "--mode",
                "rewrite",
                "--stage1_root",
                "x",
                "--input_json",
                "x",
                "--out_image_root",
                "x",
                "--out_jsonl",
                "x",
            ]
        )
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["pack", "--layout", "time_spatial", "--input_json", "x", "--out_image_root", "x", "--out_jsonl", "x"]
        )


def test_non_object_rows_fail_alone(tiny_dataset, tmp_path, capsys, caplog):
    rows = [
        [1, 2],
        5,
        "clip.mp4",
        {"id": "ok", "video": "clip.mp4", "conversations": CONV},
        {"id": "bad_video", "video": 7},
        {"id": "empty_video", "video": ""},  # a broken video row, not an image or text sample (those have none)
        {"id": "image", "image": "a.jpg", "video": None},
    ]
    data = tmp_path / "rows.json"
    data.write_text(json.dumps(rows))
    parsed = load_dataset(data)
    assert "expected a JSON object, got list" in parsed[0]["_error"]
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"id": "ok", "video": "clip.mp4"}\n[1]\n{broken\n')
    assert [("_error" in r) for r in load_dataset(jsonl)] == [False, True, True]
    for name, text in (("bom.jsonl", '{"id": "ok", "video": "clip.mp4"}\n'), ("bom.json", '[{"id": "ok"}]')):
        bom = tmp_path / name  # a UTF-8 BOM, as Windows editors and pandas' utf-8-sig write it
        bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert [row.get("id") for row in load_dataset(bom)] == ["ok"], name
    # Text with raw line/paragraph separators (JSON allows them unescaped) and Windows line ends: one row per line.
    text = "a\u2028b\u2029c\x85d\x0ce"
    lines = tmp_path / "separators.jsonl"
    lines.write_bytes(
        "".join(
            json.dumps({"id": n, "video": "clip.mp4", "text": text}, ensure_ascii=False) + "\r\n" for n in "xy"
        ).encode()
    )
    assert [(row.get("id"), row.get("text"), row["_row_idx"]) for row in load_dataset(lines)] == [
        ("x", text, 0),
        ("y", text, 1),
    ]
    out_jsonl = tmp_path / "train.jsonl"
    assert (
        _run(
            [
                "pack",
                "--input_json",
                str(data),
                "--out_image_root",
                str(tmp_path / "packs"),
                "--out_jsonl",
                str(out_jsonl),
                "--video_root",
                str(tiny_dataset),
                "--num_workers",
                "0",
                *SMALL,
            ]
        )
        == 1
    )
    assert "1 done, 0 skipped (already done), 5 failed" in capsys.readouterr().out
    assert [json.loads(line)["id"] for line in out_jsonl.read_text().splitlines()] == ["ok"]
    fail = Path(str(out_jsonl) + ".fail.txt").read_text()
    assert "got list" in fail and "got int" in fail and "got str" in fail and "'video' must be a path" in fail
    assert "row 5: 'video' is an empty path" in fail and "image" not in fail
    listing = tmp_path / "videos.jsonl"
    listing.write_text(
        json.dumps({"video": str(tiny_dataset / "clip.mp4")}) + '\n[1, 2]\n42\n{"video": 3}\n{"video": ""}\n'
    )
    out = tmp_path / "eval"
    precompute = ["precompute", "--videos_jsonl", str(listing), "--out_root", str(out), "--num_workers", "0"]
    with caplog.at_level("ERROR", logger="cv_reader"):
        assert _run([*precompute, "--seq_len_frames", "8", "--num_images", "2", "--square_size", "64"]) == 1
    assert "1 done, 0 skipped (already done), 4 failed" in capsys.readouterr().out
    assert "failed: entry 4: needs a 'video' path string" in caplog.text and "None" not in caplog.text


def test_unsafe_ids_stay_inside_the_output_root(tiny_dataset, tmp_path):
    root = tmp_path / "deep" / "out"
    rows = [
        {"id": "../../escaped", "video": "clip.mp4", "conversations": CONV},
        {"id": "/abs/path", "video": "clip.mp4", "conversations": CONV},
    ]
    data = tmp_path / "evil.json"
    data.write_text(json.dumps(rows))
    assert (
        _run(
            [
                "stage1",
                "--input_json",
                str(data),
                "--out_root",
                str(root),
                "--video_root",
                str(tiny_dataset),
                *STAGE1_SMALL,
                "--num_workers",
                "0",
            ]
        )
        == 0
    )
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "evil.json"]
    assert written and all(root in p.parents for p in written)
    assert len(list(root.glob("*.meta.json"))) == 2
    listing = tmp_path / "videos.jsonl"
    listing.write_text(json.dumps({"video": str(tiny_dataset / "clip.mp4"), "key": "../../escaped"}) + "\n")
    out = tmp_path / "deep" / "eval"
    assert (
        _run(
            [
                "precompute",
                "--videos_jsonl",
                str(listing),
                "--out_root",
                str(out),
                "--key_mode",
                "stem",
                "--seq_len_frames",
                "8",
                "--num_images",
                "2",
                "--square_size",
                "64",
                "--num_workers",
                "0",
            ]
        )
        == 0
    )
    (key_dir,) = (out / "assets").iterdir()
    assert key_dir.name.startswith("_.._.._escaped_")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "deep" / "escaped").exists()
    assert assets.safe_name("s0") == "s0" and assets.safe_name("视频") == "视频"
    assert assets.safe_name("..").startswith("_.._") and assets.safe_name("a/b").startswith("a_b_")
    assert assets.safe_name("a/b") != assets.safe_name("a:b")  # distinct ids keep distinct names
    assert len(assets.safe_name("长" * 200).encode()) <= assets.MAX_NAME_PART


def test_rerun_with_other_geometry_is_redone(tiny_dataset, tmp_path, capsys):
    args = [
        "pack",
        "--input_json",
        str(tiny_dataset / "data.json"),
        "--out_image_root",
        str(tmp_path / "packs"),
        "--out_jsonl",
        str(tmp_path / "train.jsonl"),
        "--num_workers",
        "0",
        "--T",
        "8",
        "--num_images",
        "2",
        "--patch",
        "16",
    ]
    assert _run([*args, "--square_size", "64"]) == 0
    assert _run([*args, "--square_size", "64"]) == 0
    assert "0 done, 1 skipped" in capsys.readouterr().out
    assert _run([*args, "--square_size", "96"]) == 0  # other geometry: not reused
    assert "1 done, 0 skipped" in capsys.readouterr().out
    record = json.loads((tmp_path / "train.jsonl").read_text())
    assert Image.open(record["image"][0]).size == (96, 96)
    assert np.load(record["positions_thw"]).shape == (2 * 36, 3)
    meta = json.loads((Path(record["positions_thw"]).parent / "pack_meta.json").read_text())
    assert meta["params"]["square_size"] == 96
    meta_path = Path(record["positions_thw"]).parent / "pack_meta.json"
    for edited in ({**meta, "params": ["square_size", 96]}, [1, 2]):  # hand-edited or foreign: redone, no crash
        meta_path.write_text(json.dumps(edited))
        capsys.readouterr()
        assert _run([*args, "--square_size", "96"]) == 0
        assert "1 done, 0 skipped" in capsys.readouterr().out

    listing = tmp_path / "videos.jsonl"
    listing.write_text(json.dumps({"video": str(tiny_dataset / "clip.mp4")}) + "\n")
    pre = [
        "precompute",
        "--videos_jsonl",
        str(listing),
        "--out_root",
        str(tmp_path / "eval"),
        "--num_workers",
        "0",
        "--seq_len_frames",
        "8",
        "--square_size",
        "64",
    ]
    assert _run([*pre, "--num_images", "3"]) == 0
    assert _run([*pre, "--num_images", "2"]) == 0
    assert "1 done, 0 skipped" in capsys.readouterr().out
    (asset_dir,) = (tmp_path / "eval" / "assets").iterdir()
    assert sorted(p.name for p in asset_dir.glob("mosaic_*.jpg")) == ["mosaic_000.jpg", "mosaic_001.jpg"]


def test_permissions_follow_the_umask(tiny_dataset, tmp_path):
    old = os.umask(0o002)
    try:
        assets.save_json(tmp_path / "a.json", {"x": 1})
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o664
        os.umask(0o022)
        assert (
            _run(
                [
                    "pack",
                    "--input_json",
                    str(tiny_dataset / "data.json"),
                    "--out_image_root",
                    str(tmp_path / "packs"),
                    "--out_jsonl",
                    str(tmp_path / "train.jsonl"),
                    *SMALL,
                ]
            )
            == 0
        )
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "a.json"]
    assert len(files) >= 5 and all(p.stat().st_mode & 0o777 == 0o644 for p in files)


def test_stale_temp_files_are_removed(tiny_dataset, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: the writer of these files was killed
    host = assets._host_tag()
    out = tmp_path / "stage1"
    out.mkdir()
    stale = out / f".x.visidx_thw.npy.k3j4h5g6.cvtmp-{host}-{dead.pid}.tmp"
    live = out / f".y.meta.json.a1b2c3d4.cvtmp-{host}-{os.getpid()}.tmp"
    foreign = out / ".z.npy.q1w2e3r4.cvtmp-otherhost-1.tmp"
    for path in (stale, live, foreign):
        path.write_bytes(b"partial")
    assert (
        _run(
            [
                "stage1",
                "--input_json",
                str(tiny_dataset / "data.json"),
                "--out_root",
                str(out),
                *STAGE1_SMALL,
                "--num_workers",
                "0",
            ]
        )
        == 0
    )
    assert not stale.exists() and live.exists() and foreign.exists()  # others may still be writing those
    assert socket.gethostname()  # the host part of the temp name comes from here


def test_relative_output_root_manifest_loads(tiny_dataset, tmp_path, monkeypatch):
    from llava.data.manifests import load_manifest

    monkeypatch.chdir(tmp_path)
    assert (
        _run(
            [
                "pack",
                "--input_json",
                str(tiny_dataset / "data.json"),
                "--out_image_root",
                "packs",
                "--out_jsonl",
                "lists/train.jsonl",
                "--num_workers",
                "0",
                *SMALL,
            ]
        )
        == 0
    )
    manifest = load_manifest(tmp_path / "lists" / "train.jsonl", validate=True)
    record = manifest[0]
    paths = [record.media_root / p for p in record.sample["image"]] + [
        record.media_root / record.sample["positions_thw"]
    ]
    assert len(paths) == 3 and all(p.is_file() for p in paths)


def test_write_positions_and_first_full_options(tiny_dataset, tmp_path):
    args = [
        "pack",
        "--input_json",
        str(tiny_dataset / "data.json"),
        "--out_image_root",
        str(tmp_path / "packs"),
        "--num_workers",
        "0",
        *SMALL,
    ]
    assert _run([*args, "--out_jsonl", str(tmp_path / "a.jsonl"), "--no-write_positions"]) == 0
    record = json.loads((tmp_path / "a.jsonl").read_text())
    assert "positions_thw" not in record and not list((tmp_path / "packs").rglob("positions_thw.npy"))
    assert _run([*args, "--out_jsonl", str(tmp_path / "b.jsonl"), "--no-first_full"]) == 0
    positions = np.load(json.loads((tmp_path / "b.jsonl").read_text())["positions_thw"])
    assert (positions[:, 0] == 0).sum() < 16  # t=0 competes: not kept whole
    stage1 = tmp_path / "s1"
    base = ["--input_json", str(tiny_dataset / "data.json"), "--num_workers", "0"]
    assert (
        _run(
            [
                "stage1",
                *base,
                "--out_root",
                str(stage1),
                *STAGE1_SMALL,
                "--no-keep_first_full_frame",
            ]
        )
        == 0
    )
    out = ["stage2", *base, "--stage1_root", str(stage1), "--out_image_root", str(tmp_path / "p2"), *SMALL]
    assert _run([*out, "--out_jsonl", str(tmp_path / "c.jsonl")]) == 1  # --first_full (default) is checked
    assert "not kept whole" in (tmp_path / "c.jsonl.fail.txt").read_text()
    assert _run([*out, "--out_jsonl", str(tmp_path / "d.jsonl"), "--no-first_full"]) == 0
    assert (
        _run(
            [
                "stage1",
                *base,
                "--out_root",
                str(tmp_path / "s3"),
                *STAGE1_SMALL,
                "--padding_policy",
                "exclude",
            ]
        )
        == 0
    )


@pytest.mark.parametrize(
    ("command", "extra", "flag"),
    [
        ("pack", ["--T", "0"], "--T"),
        ("pack", ["--patch", "0"], "--patch"),
        ("pack", ["--square_size", "100"], "--square_size"),
        ("pack", ["--T", "1"], "budget"),  # 8 mosaics cannot be filled from one frame
        ("pack", ["--jpg_quality", "0"], "--jpg_quality"),
        ("pack", ["--num_shards", "2", "--shard_id", "2"], "--shard_id"),
        ("pack", ["--num_workers", "-1"], "--num_workers"),
        ("pack", ["--video_root", "/nonexistent/videos"], "--video_root"),
        ("stage1", ["--patch_size", "0"], "--patch_size"),
        ("stage1", ["--budget", "5"], "--budget"),
        ("precompute", ["--seq_len_frames", "0"], "--seq_len_frames"),
    ],
)
def test_bad_arguments_are_refused_before_any_video(tiny_dataset, tmp_path, capsys, command, extra, flag):
    """Values that would fail every item (after a decode each, or as a ZeroDivisionError) or select no shard at all
    are refused up front: exit status 2, the flag named, nothing written."""
    data = str(tiny_dataset / "data.json")
    out = tmp_path / "out"
    argv = {
        "pack": ["pack", "--input_json", data, "--out_image_root", str(out), "--out_jsonl", str(out / "t.jsonl")],
        "stage1": ["stage1", "--input_json", data, "--out_root", str(out)],
        "precompute": ["precompute", "--videos", str(tiny_dataset / "clip.mp4"), "--out_root", str(out)],
    }[command]
    assert _run([*argv, *extra]) == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()


def test_select_patches_checks_its_arguments_before_opening_the_video(tmp_path):
    from cv_reader import select_patches

    missing = tmp_path / "nowhere.mp4"
    for kwargs, message in (
        ({"num_frames": 0}, "num_frames must be a positive integer"),
        ({"patch_size": 0}, "patch_size must be a positive integer"),
        ({"square_size": 0}, "square_size must be an integer of at least patch_size"),
        ({"num_frames": 1}, "exceeds the 1296 cells of 1 sampled frames"),
        ({"budget": 100}, "smaller than the first frame kept whole"),
        ({"work_factor": 3}, "work_factor must be 1, 2, 4, 8 or 16"),
    ):
        with pytest.raises(ValueError, match=message) as info:
            select_patches(missing, **kwargs)
        assert type(info.value) is ValueError  # the caller's error, not a VideoReadError of the (missing) file


def test_fail_lists_keep_one_line_per_failure(tiny_dataset, tmp_path):
    """An id or a path with a tab or a line break (legal in JSON and in file names) stays on its failure's line."""
    rows = [{"id": "a\tb\nc", "video": "no\nsuch.mp4", "conversations": CONV}, {"id": "d", "video": "gone.mp4"}]
    data = tmp_path / "rows.json"
    data.write_text(json.dumps(rows))
    assert _run(["stage1", "--input_json", str(data), "--out_root", str(tmp_path / "s1"), *STAGE1_SMALL]) == 1
    (fail_list,) = (tmp_path / "s1").glob("stage1_failed.*.txt")
    lines = fail_list.read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("a\\tb\\nc\tno\\nsuch.mp4\t") and lines[1].startswith("d\t")


def test_jsonl_datasets_are_streamed(tmp_path):
    """A batch over a large JSONL manifest holds its shard's jobs, not every row: rows are read line by line
    (200k LLaVA-Video rows held 670 MiB as Python objects when loaded whole)."""
    import tracemalloc

    from cv_reader.cli import iter_dataset

    data = tmp_path / "big.jsonl"
    row = {"video": "v.mp4", "conversations": CONV * 4, "data_source": "llava_video_178k"}
    data.write_text("".join(json.dumps({"id": f"s{n}", **row}) + "\n" for n in range(5000)))
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_dataset(data))
        streamed = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        loaded = load_dataset(data)
        whole = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == len(loaded) == 5000 and loaded[-1]["_row_idx"] == 4999
    assert streamed * 20 < whole, (streamed, whole)


def test_stage2_refuses_stage1_files_that_do_not_fit(tiny_dataset, tmp_path):
    """Stage 2 packs pixels of a second decode by stage 1's frame indices: a video replaced since stage 1, or stage-1
    files that are truncated, missing or out of range, fail that item with the file named (a replaced video was
    packed with other frames; a truncated array said only "EOF", a missing one "[Errno 2]")."""
    import shutil

    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"id": "s0", "video": "clip.mp4", "conversations": CONV}]))
    shutil.copy(tiny_dataset / "clip.mp4", tmp_path / "clip.mp4")
    assert _run(["stage1", "--input_json", str(data), "--out_root", str(tmp_path / "s1"), *STAGE1_SMALL]) == 0
    (visidx,) = (tmp_path / "s1").glob("*.visidx_thw.npy")
    (frame_ids,) = (tmp_path / "s1").glob("*.frame_ids.npy")
    pristine = {path: path.read_bytes() for path in (visidx, frame_ids, tmp_path / "clip.mp4")}

    def stage2() -> str:
        argv = ["stage2", "--input_json", str(data), "--stage1_root", str(tmp_path / "s1")]
        out = tmp_path / "train.jsonl"
        code = _run([*argv, "--out_image_root", str(tmp_path / "img"), "--out_jsonl", str(out), *SMALL, "--overwrite"])
        failures = (tmp_path / "train.jsonl.fail.txt").read_text()
        for path, content in pristine.items():  # undo the damage for the next case
            path.write_bytes(content)
        return failures if code == 1 else "ok"

    assert stage2() == "ok"
    moving_object_clip(tmp_path / "clip.mp4", num_frames=5, height=48, width=64, obj=12, seed=3)  # replaced
    assert "the video changed since stage 1 (12 frames then, 5 now)" in stage2()
    visidx.write_bytes(pristine[visidx][:100])
    assert f"{visidx.name}: cannot read the stage-1 array" in stage2()
    frame_ids.unlink()
    assert f"{frame_ids.name}: cannot read the stage-1 array" in stage2()
    np.save(frame_ids, np.load(frame_ids) + 100)
    assert "samples frame 111 of a 12-frame video" in stage2()
