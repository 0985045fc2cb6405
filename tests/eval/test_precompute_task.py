"""`python -m llava.eval.precompute_videos --task T` (scripts/precompute_codec_patch/precompute.sh) lists a
benchmark's videos through the task's own `doc_to_visual` on a stand-in (tests/eval/standins.py) and precomputes
them with cv_reader: sharded and resumable, and the plugin finds the assets from the video path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llava.eval.video_sources import VideoSources

from .benchmarks import STANDINS

pytest.importorskip("lmms_eval", reason="lmms-eval is installed by scripts/setup_env.sh (extras eval/dev)")

CODE = """
import sys
from llava.eval.precompute_videos import main
out, ckpt = sys.argv[1], sys.argv[2]
common = ["--task", "temporalbench_long_qa", "--out_root", out, "--model_path", ckpt]
assert main(common + ["--num_shards", "2", "--shard_id", "1"]) == 0
assert main(common) == 0
"""


def test_precompute_lists_videos_through_the_task_and_resumes(tiny_llava, tmp_path):
    hf_home, out = tmp_path / "hf_home", tmp_path / "assets"
    STANDINS["temporalbench_long_qa"].build(hf_home)
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    process = subprocess.run([sys.executable, "-c", CODE, str(out), str(tiny_llava)], env=env, capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    log = process.stdout + process.stderr
    assert process.returncode == 0, log[-4000:]
    task_out = out / "temporalbench_long_qa"
    # 4 documents, 2 distinct clips (the task's bare-string paths), listed once each.
    assert len((task_out / "videos.jsonl").read_text().splitlines()) == 2
    assert "1 done, 0 skipped" in log and "1 done, 1 skipped" in log  # shard 1 of 2, then the rest only
    sources = VideoSources(mode="codec_offline", offline_roots=[task_out], num_frames=4, square_size=128,
                           patch_size=16)  # fmt: skip
    for clip in ("clip0.mp4", "clip1.mp4"):
        assert sources.find_assets(hf_home / "temporalbench" / "clips" / clip) is not None, clip
