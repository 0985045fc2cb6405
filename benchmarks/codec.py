"""Benchmark of `cv_reader` against a plain PyAV decode and the `lmms-video-utils` codec frontend, side by side in
one run on the same clips.

    python benchmarks/codec.py                                # full matrix (several minutes on 2 cores)
    python benchmarks/codec.py --quick                        # short clips only, 60 s long clip, 1 repetition
    python benchmarks/codec.py --lmms_site /tmp/bench-site    # add lmms-video-utils (see below)

Clips (generated with PyAV/x264/x265 unless given with --clips): H.264 360p/720p/1080p short clips with B-frames, a
4-s 2160p clip, 720p without B-frames, a PAL-size (720x576), a 10-bit 360p, a 320x240 and a rotated 720p clip, one
HEVC clip, a long 720p clip, and the two demo clips of tests/fixtures when present (`--only TEXT`: just the clips
whose label holds TEXT). The H.264 clips are coded as one slice per picture, as ffmpeg's x264 and most real footage
(the demo clips) are; the "2 slices" rows are PyAV's own default encode on a 2-core machine (x264 sliced threads),
whose pictures a plain decode splits over both cores (slice threading), so that the plain decode there takes the
whole machine. `--codecs` adds 720p clips of other codecs, each in its usual container: MPEG-2 (.mpg), MPEG-4 Part
2 (.avi), FLV1 (.flv), VP8 and VP9 (.webm), AV1 (.mkv) and MJPEG (.avi).

Arms, each in a fresh child process per clip and repetition (so peak RSS is that arm's alone):
* `decode`: plain PyAV decode of every frame (library defaults), the floor any decoder-based frontend pays;
* `ours`: `cv_reader.select_patches` + the 8 mosaics (no file writes);
* `numpy` (with `--numpy`): `ours` with its compiled loops turned off (`CV_READER_KERNELS=0`), the same numbers
  computed by the numpy versions;
* `baseline` (with `--baseline DIR`): `ours` with the `cv_reader` of another checkout, e.g. an older commit:
  `git worktree add /tmp/base <rev>` then `--baseline /tmp/base/Compressed_Video_Reader`;
* `lmms`: `lmms_video_utils.fetch_codec_video(path, target_canvas=8)`. It is not a project dependency: install it
  into a separate folder, `pip install --no-deps --target /tmp/bench-site lmms-video-utils` (it imports torch, which
  the project venv has), and pass that folder with `--lmms_site`. Without the flag the arm is left out.

Times exclude interpreter start and imports; "cpu" is user+system CPU seconds of the child during the work (steadier
than wall time on a shared machine). The minimum over repetitions is reported. The last line holds the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tests" / "fixtures" / "codec_demo" / "videos"

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {pkg!r})
arm, path, site = sys.argv[1], sys.argv[2], sys.argv[3]
if arm in ("ours", "numpy", "baseline"):
    from cv_reader import select_patches
    def work():
        select_patches(path).mosaics()
elif arm == "lmms":
    sys.path.insert(0, site)
    from lmms_video_utils import fetch_codec_video
    def work():
        fetch_codec_video(path, target_canvas=8)
else:
    import av
    def work():
        with av.open(path) as container:
            for _ in container.decode(video=0):
                pass
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
wall0, cpu0 = time.perf_counter(), cpu()
work()
wall, used = time.perf_counter() - wall0, cpu() - cpu0
# VmHWM: peak RSS of this process image (ru_maxrss would carry the parent's peak across fork + exec).
rss = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({{"wall": wall, "cpu": used, "rss_mb": int(rss) / 1024.0}}))
"""


def make_clip(
    path: Path,
    *,
    seconds: float,
    height: int,
    codec: str = "libx264",
    bframes: int = 3,
    fps: int = 30,
    sliced_threads: bool = False,
    width: int | None = None,
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
) -> Path:
    """Synthetic clip: a slowly panning smooth texture with grain and two moving squares (natural-ish content, so
    decoding costs about what real footage costs). 16:9 at `height` unless `width` is given. H.264 pictures are one
    slice each unless `sliced_threads` (two, as x264's sliced threads, PyAV's default, make with two encoder
    threads). Other encoders (`OTHER_CODECS`) take `other_codec_options`. `rotation`: display rotation metadata
    (counter-clockwise degrees), as phones write it."""
    width = width or (height * 16 // 9) // 2 * 2
    rng = np.random.default_rng(0)
    count = int(seconds * fps)
    pan_width = width + count // 2 + 16
    small = rng.integers(0, 255, (height // 8 + 2, pan_width // 8 + 2, 3), dtype=np.uint8).astype(np.float32)
    texture = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)[:height, :pan_width]
    texture = (
        0.25 * texture
        + 0.25 * np.roll(texture, 4, 0)
        + 0.25 * np.roll(texture, 4, 1)
        + 0.25 * np.roll(texture, (4, 4), (0, 1))
    ).astype(np.uint8)
    grain = rng.integers(-6, 7, (8, height, width, 3), dtype=np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        if codec == "libx265":
            stream.options = {"preset": "ultrafast", "x265-params": f"bframes={bframes}:keyint=250:log-level=error"}
        elif codec == "libx264":
            slices = "threads=2:sliced-threads=1" if sliced_threads else "sliced-threads=0"  # 2 slices, or 1
            params = f"bframes={bframes}:keyint=250:{slices}"
            stream.options = {"preset": "veryfast", "crf": "23", "x264-params": params}
        else:
            stream.options = other_codec_options(codec, bframes=bframes, pixels=width * height)
        timed = codec not in ("libx264", "libx265")  # (x264/x265 number the frames themselves; the others need pts)
        for i in range(count):
            x0 = i // 2
            frame = texture[:, x0 : x0 + width].astype(np.int16) + grain[i % 8]
            for k, (size, speed) in enumerate(((height // 7, 5), (height // 11, 9))):
                y = (height // 6 + height * k // 3 + int(height / 9 * np.sin(i / 15))) % (height - size)
                x = (speed * i) % (width - size)
                frame[y : y + size, x : x + size] = (255, 40 + 100 * k, 40)
            rgb = np.clip(frame, 0, 255).astype(np.uint8)
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if timed:
                picture.pts, picture.time_base = i, Fraction(1, fps)
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# The encoders of `--codecs` (other than x264/x265): the container each usually travels in, and its settings.
OTHER_CODECS = {
    "mpeg2video": ".mpg",  # MPEG-2 program stream (DVD, broadcast captures)
    "mpeg4": ".avi",  # MPEG-4 Part 2 in AVI (DivX/Xvid era datasets)
    "flv": ".flv",  # FLV1 (Sorenson H.263)
    "libvpx": ".webm",  # VP8
    "libvpx-vp9": ".webm",
    "libsvtav1": ".mkv",  # AV1
    "mjpeg": ".avi",  # every frame intra
}


def other_codec_options(codec: str, *, bframes: int, pixels: int) -> dict[str, str]:
    """Encoder options of `OTHER_CODECS`: a bit rate of about 4 Mb/s at 720p for the MPEG family (scaled by frame
    size), B-frames where the codec has them, the libvpx/SVT presets fast enough for a benchmark."""
    rate = f"{max(1, round(4 * pixels / (1280 * 720)))}M"
    if codec in ("mpeg2video", "mpeg4"):
        return {"b": rate, "bf": str(min(bframes, 2)), "g": "15" if codec == "mpeg2video" else "250"}
    if codec in ("libvpx", "libvpx-vp9"):
        return {"deadline": "realtime", "cpu-used": "8", "b": rate}
    if codec == "libsvtav1":
        return {"preset": "12", "crf": "35", "svtav1-params": "log-level=1"}
    return {"b": rate} if codec == "flv" else {"b": f"{5 * int(rate[:-1])}M"}  # (mjpeg: intra only, 5x the rate)


def run_arm(arm: str, path: Path, *, lmms_site: str, baseline: str = "") -> dict:
    """Time, CPU and peak RSS of one arm on one clip, in a fresh child process."""
    code = _CHILD.format(pkg=baseline if arm == "baseline" else str(REPO / "Compressed_Video_Reader"))
    env = {**os.environ, "CV_READER_KERNELS": "0"} if arm == "numpy" else None
    out = subprocess.run(
        [sys.executable, "-c", code, arm, str(path), lmms_site], capture_output=True, text=True, check=False, env=env
    )
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1][:120]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _kernels_built() -> bool:
    """Whether `cv_reader`'s compiled loops are importable from this checkout (a child process: this one has not
    imported the package)."""
    code = "from cv_reader import kernels; print(kernels._kernels is not None)"
    env = {**os.environ, "PYTHONPATH": str(REPO / "Compressed_Video_Reader")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    return out.stdout.strip() == "True"


def _vs_decode(best: dict[str, dict], arm: str, key: str = "wall") -> float:
    """`key` ("wall" or "cpu") of an arm over the plain decode's; NaN when the arm failed."""
    return best[arm][key] / best["decode"][key] if "error" not in best[arm] else float("nan")


def clip_matrix(
    folder: Path, *, quick: bool, long_seconds: float, only: str = "", codecs: bool = False
) -> list[tuple[str, Path]]:
    """(label, path) of the generated clips (those whose label contains `only`); with `codecs`, also 720p clips of
    the codecs in `OTHER_CODECS`."""
    short = 4.0 if quick else 10.0
    specs = [
        ("h264 360p B", dict(seconds=short, height=360)),
        ("h264 720p B", dict(seconds=short, height=720)),
        ("h264 720p noB", dict(seconds=short, height=720, bframes=0)),
        # PAL size: the letterboxed content is 576x461, an odd height (see `cv_reader.decode.RgbScaler`).
        ("h264 720x576 PAL", dict(seconds=short, height=576, width=720, fps=25)),
        ("h264 360p 10-bit", dict(seconds=short, height=360, pix_fmt="yuv420p10le")),
        # 4:3 320x240 at 25 fps (UCF-101-like): the smallest frames, the cheapest decode to keep up with.
        ("h264 320x240", dict(seconds=short, height=240, width=320, fps=25)),
        ("h264 720p rotated", dict(seconds=short, height=720, rotation=90)),  # a phone clip shown portrait
        ("h264 1080p B", dict(seconds=short, height=1080)),
        ("h264 2160p B", dict(seconds=4.0, height=2160)),
        ("hevc 720p B", dict(seconds=short, height=720, codec="libx265")),
        (f"h264 720p B {int(long_seconds)}s", dict(seconds=long_seconds, height=720)),
        ("h264 360p B 2 slices", dict(seconds=short, height=360, sliced_threads=True)),
        ("h264 720p B 2 slices", dict(seconds=short, height=720, sliced_threads=True)),
        ("h264 720p noB 2 slices", dict(seconds=short, height=720, bframes=0, sliced_threads=True)),
    ]
    if codecs:
        # Decoders far cheaper than H.264's (MPEG-2, MPEG-4, FLV1) leave less room for the analysis; codecs that
        # export no vectors (VP8, VP9, AV1, MJPEG) take block matching for every sampled frame.
        names = {"mpeg2video": "mpeg2 720p B", "mpeg4": "mpeg4 720p B", "flv": "flv1 720p", "libvpx": "vp8 720p",
                 "libvpx-vp9": "vp9 720p", "libsvtav1": "av1 720p", "mjpeg": "mjpeg 720p"}  # fmt: skip
        for codec, label in names.items():
            pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            specs.append((label, dict(seconds=short, height=720, codec=codec, bframes=2, pix_fmt=pix_fmt)))
    clips = []
    for label, spec in specs:
        if only not in label:
            continue
        suffix = OTHER_CODECS.get(spec.get("codec", ""), ".mp4")
        path = folder / f"{label.replace(' ', '_')}_{spec['seconds']:g}s{suffix}"
        clips.append((label, path if path.is_file() else make_clip(path, **spec)))
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 s short clips, 60 s long clip, one repetition")
    parser.add_argument("--long_seconds", type=float, default=None, help="long clip length (default 180 s)")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per arm and clip (minimum kept)")
    parser.add_argument("--clips", nargs="*", default=[], help="extra real clips")
    parser.add_argument("--lmms_site", default="", help="folder holding lmms_video_utils (pip --target)")
    parser.add_argument("--clip_dir", default=None, help="keep the generated clips here and reuse them next time")
    parser.add_argument("--baseline", default="", help="a Compressed_Video_Reader folder to time beside ours")
    parser.add_argument(
        "--codecs", action="store_true", help="also 720p clips of MPEG-2, MPEG-4 Part 2, FLV1, VP8, VP9, AV1, MJPEG"
    )
    parser.add_argument("--only", default="", help="only the clips whose label contains this text, e.g. 2160p")
    parser.add_argument(
        "--numpy", action="store_true", help="add ours with the compiled loops off (CV_READER_KERNELS=0) as an arm"
    )
    args = parser.parse_args(argv)
    long_seconds = args.long_seconds or (60.0 if args.quick else 180.0)
    repeat = args.repeat or (1 if args.quick else 2)
    arms = ["decode", "ours"] + (["numpy"] if args.numpy else []) + (["baseline"] if args.baseline else [])
    arms += ["lmms"] if args.lmms_site else []
    print(
        f"# machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; python "
        f"{platform.python_version()}, numpy {np.__version__}, av {av.__version__}; compiled loops "
        f"{'built' if _kernels_built() else 'NOT built (pip install -e .): ours runs the numpy loops'}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.clip_dir or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        clips = [(Path(c).name, Path(c)) for c in args.clips] + [(p.stem, p) for p in sorted(DEMO.glob("*.mp4"))]
        clips += clip_matrix(
            Path(tmp), quick=args.quick, long_seconds=long_seconds, only=args.only, codecs=args.codecs
        )
        clips = [(label, path) for label, path in clips if args.only in label]
        print(
            f"# {len(clips)} clips ready in {time.perf_counter() - t0:.0f} s; arms {', '.join(arms)}; min of {repeat}"
        )
        header = f"{'clip':24s} {'frames':>6s} {'size':>9s}"
        for arm in arms:
            header += f" {arm + ' s':>9s} {arm + ' cpu':>9s} {arm + ' MiB':>9s}"
        print(
            header
            + f" {'ours/dec':>8s} {'cpu o/d':>8s}"
            + (f" {'nump/dec':>8s}" if "numpy" in arms else "")
            + (f" {'base/dec':>8s}" if "baseline" in arms else "")
            + (f" {'lmms/dec':>8s}" if "lmms" in arms else "")
        )
        rows = []
        for label, path in clips:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                size, frames = f"{stream.codec_context.width}x{stream.codec_context.height}", stream.frames
            best: dict[str, dict] = {}
            for rep in range(repeat):
                # Interleaved (background load moves absolute times a lot), each repetition starting with another
                # arm, so that no arm always runs right after the same one.
                for arm in arms[rep % len(arms) :] + arms[: rep % len(arms)]:
                    result = run_arm(arm, path, lmms_site=args.lmms_site, baseline=args.baseline)
                    if "error" in result or arm not in best or result["wall"] < best[arm]["wall"]:
                        best[arm] = {**result, "cpu": min(result.get("cpu", 1e9), best.get(arm, {}).get("cpu", 1e9))}
            line = f"{label[:24]:24s} {frames:6d} {size:>9s}"
            for arm in arms:
                r = best[arm]
                line += (
                    f" {'error':>9s} {'':>9s} {'':>9s}"
                    if "error" in r
                    else f" {r['wall']:9.3f} {r['cpu']:9.3f} {r['rss_mb']:9.0f}"
                )
            ratio, cpu_ratio = _vs_decode(best, "ours"), _vs_decode(best, "ours", "cpu")
            others = {arm: _vs_decode(best, arm) for arm in ("numpy", "baseline", "lmms") if arm in arms}
            line += f" {ratio:8.2f} {cpu_ratio:8.2f}" + "".join(f" {r:8.2f}" for r in others.values())
            print(line, flush=True)
            rows.append(
                {
                    "clip": label,
                    "ours_vs_decode": round(ratio, 2),
                    "ours_cpu_vs_decode": round(cpu_ratio, 2),
                    **{f"{arm}_vs_decode": round(r, 2) for arm, r in others.items()},
                    "ours_rss_mb": round(best["ours"].get("rss_mb", float("nan"))),
                }
            )
            for arm in arms:
                if "error" in best[arm]:
                    print(f"#   {arm} failed on {label}: {best[arm]['error']}")
    print("RATIOS " + json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
