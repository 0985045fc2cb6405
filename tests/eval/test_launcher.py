"""`scripts/eval/eval_ov_encoder.sh` on the local tasks: prints the results table, and fails loudly when lmms-eval
crashes (lmms-eval itself exits 0 then)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, lmms_eval_env


def _installed_extras() -> str:
    """The extras of this environment's set-up stamp (scripts/setup_env.sh), so the launcher installs nothing."""
    # The stamp's inputs, in the order scripts/setup_env.sh hashes them (`stamp_inputs` there).
    inputs = ["pyproject.toml", ".ci/constraints.txt", "setup.py", "Compressed_Video_Reader/cv_reader/_kernels.c"]
    digest = hashlib.sha1(b"".join((REPO_ROOT / name).read_bytes() for name in inputs)).hexdigest()[:12]
    stamps = sorted(Path(sys.prefix).glob(f".installed-{digest}-*"))
    if not stamps:
        # scripts/run_tests.sh sets the environment up first; a stale one is a set-up error, not a reason to skip.
        pytest.fail(f"{sys.prefix} was not set up by scripts/setup_env.sh for this pyproject.toml: run it first")
    return stamps[0].name.split("-", 2)[2].replace("_", ",")


def _launch(tmp_path: Path, playground: Path, checkpoint: Path, **env: str) -> subprocess.CompletedProcess:
    environment = lmms_eval_env(tmp_path, playground)
    environment.update(VENV=sys.prefix, EXTRAS=_installed_extras(), MODEL_PATH=str(checkpoint), LIMIT="2",
                       OUTPUT_DIR=str(tmp_path / "results"), **env)  # fmt: skip
    # With `dev` in EXTRAS the set-up script would try to apt-get chromium (the web demo's test): not needed here.
    environment.setdefault("CHROMIUM_PATH", "not-used-by-the-eval-launcher")
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "eval" / "eval_ov_encoder.sh")], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=600)  # fmt: skip


def test_launcher_prints_the_results_table(tiny_llava, playground_small, tmp_path):
    process = _launch(tmp_path, playground_small, tiny_llava)
    assert process.returncode == 0, process.stderr[-4000:]
    for task in ("llava_ov_playground_video_qa", "llava_ov_playground_image_qa", "llava_ov_playground_video_mc"):
        assert task in process.stdout


def test_launcher_fails_when_lmms_eval_crashes(tiny_llava, playground_small, tmp_path):
    process = _launch(tmp_path, playground_small, tiny_llava, MODEL_ARGS="dtype=bogus")
    assert process.returncode != 0
    assert "lmms-eval failed" in process.stderr and "dtype must be one of" in process.stderr
    assert os.path.isdir(tmp_path / "results")
