"""lmms-eval plugin tests: the real lmms-eval CLI on the local tasks, offline, on the CPU.

Reuses the session fixtures of tests/train (a tiny random checkpoint and a small playground built through the real
code). `sft_checkpoint` is the playground-trained one, `checkpoints/llava_ov_tiny_sft`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.conftest import playground_small, tiny_llava  # noqa: F401 (session fixtures shared with train)

pytest.importorskip("lmms_eval", reason="lmms-eval is installed by scripts/setup_env.sh (extras eval/dev)")

REPO_ROOT = Path(__file__).resolve().parents[2]
TASKS_DIR = REPO_ROOT / "llava" / "eval" / "tasks"


def lmms_eval_env(tmp_path: Path, playground: Path) -> dict[str, str]:
    """Offline hub and datasets, a private HF_HOME, the playground the local tasks read."""
    env = dict(os.environ)
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               LLAVA_PLAYGROUND_DATA=str(playground), TOKENIZERS_PARALLELISM="false")  # fmt: skip
    return env


def run_lmms_eval(
    *, model_args: str, tasks: str, out: Path, playground: Path, limit: int | None, batch_size: int = 4
) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs `python -m lmms_eval` (DEBUG verbosity: only then does a crash give a non-zero exit, spec section 7)
    and returns the process and the parsed results file."""
    command = [sys.executable, "-m", "lmms_eval", "--model", "llava_ov_encoder", "--model_args", model_args,
               "--tasks", tasks, "--include_path", str(TASKS_DIR), "--batch_size", str(batch_size),
               "--output_path", str(out), "--log_samples", "--verbosity", "DEBUG"]  # fmt: skip
    if limit is not None:
        command += ["--limit", str(limit)]
    process = subprocess.run(command, cwd=out.parent, env=lmms_eval_env(out.parent, playground), capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    log = (process.stdout + process.stderr)[-6000:]
    assert process.returncode == 0, log
    found = sorted(out.rglob("*_results.json"))
    assert found, f"lmms-eval left no results file\n{log}"
    return process, json.loads(found[-1].read_text())


@pytest.fixture(scope="session")
def sft_checkpoint() -> tuple[Path, Path]:
    """(playground-trained checkpoint, the playground it was trained on): `checkpoints/llava_ov_tiny_sft`, built
    when missing exactly as `bash scripts/sft_ov_encoder.sh` does (tiny checkpoint, playground, the sft_tiny.yaml
    training: a few minutes on 2 CPU cores), so that CI scores a really trained model."""
    checkpoint, playground = REPO_ROOT / "checkpoints" / "llava_ov_tiny_sft", REPO_ROOT / "playground" / "data"
    if not (checkpoint / "model.safetensors").is_file() or not (playground / "raw_video_eval.json").is_file():
        build_default_sft_checkpoint()
    return checkpoint, playground


def build_default_sft_checkpoint() -> None:
    from llava.playground.tiny_checkpoint import build_playground_checkpoint
    from llava.train.arguments import CONFIG_DIR
    from llava.train.train import main as train_main
    from tests.train.conftest import playground_module

    if not (REPO_ROOT / "playground" / "data" / "sft.yaml").is_file():
        playground_module().main(["--out", str(REPO_ROOT / "playground" / "data")])
    if not (REPO_ROOT / "checkpoints" / "llava_ov_tiny" / "model.safetensors").is_file():
        build_playground_checkpoint(REPO_ROOT / "checkpoints" / "llava_ov_tiny")
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)  # the shipped config names repository-relative paths, as the script runs it
    try:
        train_main([str(Path(CONFIG_DIR) / "sft_tiny.yaml")])
    finally:
        os.chdir(cwd)
