"""Damaged files, made the way storage and transfers damage them: every one is read (what is decodable) or refused
with `VideoReadError`; never another exception, a crash or a hang.

Each file is a seeded random damage (bit flips, a rewritten head, a cut, a deleted, zeroed, duplicated or swapped
range) of a real H.264 clip (the demo fixture), an MPEG-TS and an MKV (VP9: no codec vectors). The files run in one
child process per batch, so a crash of FFmpeg or PyAV fails the test with the file named instead of killing pytest.
The default suite runs 21 files; the `slow` test 210 (the corpus that found the mid-file stream IndexError).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import av
import pytest

from .synth import moving_object_clip

DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "codec_demo" / "videos" / "ytb_XwB-dkS5BVM.mp4"
KINDS = ("flip", "flip_head", "truncate", "delete", "zero", "dup", "swap")

# One child for a batch of files: select + mosaics of each, one JSON line per file ("ok", or the VideoReadError
# reason). Anything else propagates and ends the child with a traceback.
CHILD = r"""
import json, sys
from cv_reader import VideoReadError, select_patches
for path in sys.argv[1:]:
    try:
        selection = select_patches(path)
        assert len(selection.mosaics()) == 8 and selection.visidx_thw.shape == (10368, 3)
        outcome = "ok"
    except VideoReadError as err:
        assert err.path == path, (err.path, path)
        outcome = err.reason
    print(json.dumps([path, outcome]), flush=True)
"""


def damage(data: bytes, kind: str, rng: random.Random) -> bytes:
    """`data` damaged one way (positions and sizes from `rng`)."""
    out = bytearray(data)
    size = len(out)
    if kind == "flip":
        for _ in range(rng.randint(1, 200)):
            out[rng.randrange(size)] ^= 1 << rng.randrange(8)
    elif kind == "flip_head":
        for _ in range(rng.randint(1, 20)):
            out[rng.randrange(min(size, 4096))] = rng.randrange(256)
    elif kind == "truncate":
        del out[rng.randrange(size) :]
    elif kind == "delete":
        start = rng.randrange(size)
        del out[start : start + rng.randint(1, size // 4)]
    elif kind == "zero":
        start = rng.randrange(size)
        end = min(size, start + rng.randint(1, size // 8))
        out[start:end] = bytes(end - start)
    elif kind == "dup":
        start = rng.randrange(size)
        end = min(size, start + rng.randint(1, size // 8))
        out[end:end] = out[start:end]
    else:  # swap two ranges
        length = rng.randint(1, size // 8)
        first, second = rng.randrange(size // 2 - length), rng.randrange(size // 2, size - length)
        out[first : first + length], out[second : second + length] = (
            out[second : second + length],
            out[first : first + length],
        )
    return bytes(out)


@pytest.fixture(scope="module")
def sources(clip_dir, moving_clip) -> list[Path]:
    ts = clip_dir / "damage_source.ts"
    with av.open(str(moving_clip.path)) as src, av.open(str(ts), "w", format="mpegts") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    mkv = moving_object_clip(clip_dir / "damage_source.mkv", num_frames=40, seed=30, codec="libvpx-vp9").path
    return [DEMO, ts, mkv]


def _check_corpus(sources: list[Path], folder: Path, *, per_kind: int, seed: int) -> dict[str, str]:
    rng = random.Random(seed)
    files = []
    for source in sources:
        data = source.read_bytes()
        for kind in KINDS:
            for n in range(per_kind):
                path = folder / f"{source.stem}_{kind}_{n}{source.suffix}"
                path.write_bytes(damage(data, kind, rng))
                files.append(str(path))
    outcomes: dict[str, str] = {}
    for start in range(0, len(files), 40):
        batch = files[start : start + 40]
        run = subprocess.run(
            [sys.executable, "-c", CHILD, *batch], capture_output=True, text=True, timeout=600, check=False
        )
        outcomes.update(json.loads(line) for line in run.stdout.splitlines() if line.startswith("["))
        stuck = next((path for path in batch if path not in outcomes), None)
        assert run.returncode == 0 and stuck is None, f"{stuck}: exit {run.returncode}\n{run.stderr[-3000:]}"
    return outcomes


def test_damaged_files_read_or_refused(sources, tmp_path):
    outcomes = _check_corpus(sources, tmp_path, per_kind=1, seed=13)
    assert len(outcomes) == 3 * len(KINDS)
    # Both outcomes occur: damage a player shrugs off is read, a destroyed header is refused.
    assert "ok" in outcomes.values() and set(outcomes.values()) - {"ok"}


@pytest.mark.slow
def test_damaged_files_read_or_refused_large_corpus(sources, tmp_path):
    outcomes = _check_corpus(sources, tmp_path, per_kind=10, seed=1234)
    assert len(outcomes) == 3 * len(KINDS) * 10
