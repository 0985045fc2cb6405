"""Real damaged and hostile media files for the demo tests, written by the test session (nothing downloaded):

- `truncated_faststart_mp4`: an H.264 MP4 with its index first (`movflags=+faststart`, as web encoders write it), cut
  to 40% of its bytes: the index promises frames the file no longer holds.
- `corrupt_payload_mp4`: an H.264 MP4 whose media payload is overwritten with random bytes (index intact).
- `resolution_change_ts`: an MPEG-TS stream whose picture size changes mid-way (160x128, then 96x64): two TS segments
  back to back, as a broadcast or a concatenated capture has them.
- `thin_clip_mp4`: a 4096x64 H.264 clip (an extreme aspect ratio, 1:64).
- `bomb_png`: a 64-byte-ish PNG whose IHDR claims 20000x20000 pixels (a decompression bomb: 1.2 GB once decoded).
- `audio_only_m4a`: one second of AAC sound, no picture.
- `empty_file`: 0 bytes with a video name.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import av
import numpy as np

from llava.data.synthetic import random_clip_spec, render_clip, write_video


def _clip(seed: int) -> np.ndarray:
    """A 24-frame 160x128 moving-shape playground clip."""
    return render_clip(random_clip_spec(np.random.default_rng(seed), static_fraction=0.0))


def truncated_faststart_mp4(path: Path) -> Path:
    write_video(path, _clip(1), container_options={"movflags": "+faststart"})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])
    return path


def corrupt_payload_mp4(path: Path) -> Path:
    write_video(path, _clip(2))  # the index (moov) follows the payload (mdat) without faststart
    data = bytearray(path.read_bytes())
    start = data.find(b"mdat") + 4
    end = data.find(b"moov")
    noise = np.random.default_rng(0).integers(0, 256, size=end - start, dtype=np.uint8).tobytes()
    data[start:end] = noise
    path.write_bytes(bytes(data))
    return path


def resolution_change_ts(path: Path) -> Path:
    first, second = path.with_suffix(".part1.ts"), path.with_suffix(".part2.ts")
    write_video(first, _clip(3), container_format="mpegts")
    small = _clip(4)[:, ::2, ::2][:, :64, :96].copy()
    write_video(second, small, container_format="mpegts")
    path.write_bytes(first.read_bytes() + second.read_bytes())
    first.unlink()
    second.unlink()
    return path


def thin_clip_mp4(path: Path) -> Path:
    frames = np.zeros((12, 64, 4096, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        frame[:, index * 300 : index * 300 + 64] = (200, 40, 40)  # a red square moving right
    return write_video(path, frames)


def bomb_png(path: Path, *, width: int = 20000, height: int = 20000) -> Path:
    """A valid PNG header and a tiny zlib stream: PIL learns the size from IHDR before any pixel is decoded."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    pixels = zlib.compress(b"\0" * 1024)  # a few empty rows: the file stays tiny
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


def audio_only_m4a(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 0.3).astype(np.float32)[None]
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(samples[:, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


BUILDERS = {
    "truncated_faststart.mp4": truncated_faststart_mp4,
    "corrupt_payload.mp4": corrupt_payload_mp4,
    "resolution_change.ts": resolution_change_ts,
    "thin_4096x64.mp4": thin_clip_mp4,
    "bomb_20000x20000.png": bomb_png,
    "audio_only.m4a": audio_only_m4a,
    "empty.mp4": empty_file,
}

# Files no reader can use: the demos must refuse them. The thin clip and the resolution change are not listed: a
# reader may handle them (cv_reader does: it scales a changed size to the first one), and then they load in full,
# which is as good as a clear refusal.
REFUSED = [
    "truncated_faststart.mp4", "corrupt_payload.mp4", "bomb_20000x20000.png", "audio_only.m4a", "empty.mp4",
]  # fmt: skip


def build_bad_media(folder: Path) -> dict[str, Path]:
    """Every file above in `folder`, by name, plus `directory`: a folder named like a video."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: build(folder / name) for name, build in BUILDERS.items()}
    directory = folder / "a_folder.mp4"
    directory.mkdir(exist_ok=True)
    files["directory"] = directory
    return files
