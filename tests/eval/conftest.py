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
def sft_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """(playground-trained checkpoint, the playground it was trained on). An existing
    `checkpoints/llava_ov_tiny_sft` of the checkout (from `bash scripts/sft_ov_encoder.sh`) is only read; otherwise
    it is built in a temporary folder exactly as that script does (tiny checkpoint, playground, the sft_tiny.yaml
    training: a few minutes on 2 CPU cores), so that the test scores a really trained model and never writes into
    the checkout."""
    checkpoint, playground = REPO_ROOT / "checkpoints" / "llava_ov_tiny_sft", REPO_ROOT / "playground" / "data"
    if (checkpoint / "model.safetensors").is_file() and (playground / "raw_video_eval.json").is_file():
        return checkpoint, playground
    return build_sft_checkpoint(tmp_path_factory.mktemp("sft"))


def build_sft_checkpoint(root: Path) -> tuple[Path, Path]:
    from llava.playground.tiny_checkpoint import build_playground_checkpoint
    from llava.train.arguments import CONFIG_DIR
    from llava.train.train import main as train_main
    from tests.train.conftest import playground_module

    playground, tiny, sft = root / "playground", root / "llava_ov_tiny", root / "llava_ov_tiny_sft"
    playground_module().main(["--out", str(playground)])
    build_playground_checkpoint(tiny)
    # The shipped config with its repository-relative paths replaced by the temporary ones.
    train_main([str(Path(CONFIG_DIR) / "sft_tiny.yaml"), "--model_name_or_path", str(tiny),
                "--data_path", str(playground / "sft.yaml"), "--output_dir", str(sft)])  # fmt: skip
    return sft, playground
