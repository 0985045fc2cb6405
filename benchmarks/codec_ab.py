"""Two `cv_reader` checkouts side by side on one clip: `select_patches(clip).mosaics()` in a fresh process per call,
the two alternating (A B, B A, ...), medians of wall time, CPU time and page faults. For changes within the noise
of `benchmarks/codec.py`'s minimum of a few repetitions (the wall time of one clip moves by +-5 % between calls).

    git worktree add /tmp/base <rev>   (then `python setup.py build_ext --inplace` there, for its compiled loops)
    python benchmarks/codec_ab.py clip.mp4 /tmp/base/Compressed_Video_Reader Compressed_Video_Reader --runs 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from cv_reader import select_patches
def usage():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime, u.ru_minflt
wall0, (cpu0, faults0) = time.perf_counter(), usage()
select_patches(sys.argv[2]).mosaics()
wall, (cpu, faults) = time.perf_counter() - wall0, usage()
print(json.dumps({"wall": wall, "cpu": cpu - cpu0, "faults": faults - faults0}))
"""


def run_once(package: str, clip: str) -> dict:
    """Wall/CPU seconds and minor page faults of one call, in a fresh interpreter (imports excluded)."""
    out = subprocess.run([sys.executable, "-c", _CHILD, package, clip], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clip")
    parser.add_argument("packages", nargs=2, help="two Compressed_Video_Reader folders (A, B)")
    parser.add_argument("--runs", type=int, default=15, help="calls per package")
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {package: [] for package in args.packages}
    for n in range(args.runs):
        for package in args.packages if n % 2 == 0 else args.packages[::-1]:
            results[package].append(run_once(package, args.clip))
    medians = {}
    for package, runs in results.items():
        medians[package] = {key: statistics.median(run[key] for run in runs) for key in ("wall", "cpu", "faults")}
        row = medians[package]
        print(f"{package}: wall {row['wall'] * 1e3:.1f} ms, cpu {row['cpu'] * 1e3:.1f} ms, faults {row['faults']:.0f}")
    a, b = (medians[package] for package in args.packages)
    print("RATIOS " + json.dumps({key: round(b[key] / a[key], 3) for key in ("wall", "cpu", "faults")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
