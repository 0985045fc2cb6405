"""The real lmms-eval 0.7.3 task code (installed YAML + utils.py, unchanged) of the 16 benchmarks, run through
`python -m lmms_eval --model llava_ov_encoder` on offline stand-ins of their Hub datasets (tests/eval/standins.py)
with a known-answer checkpoint: each task's metric must have its known value.

Default suite: videomme, mvbench (the group of 20), docvqa_val in one run, and a 2-process torchrun (gloo, CPU)
that gathers every document. The other benchmarks are `slow`.
"""

from __future__ import annotations

import socket
import sys

import pytest

from llava.eval import results_table

from .benchmarks import STANDINS
from .standins import build_known_answer_checkpoint, run_lmms_eval, samples

pytest.importorskip("lmms_eval", reason="lmms-eval is installed by scripts/setup_env.sh (extras eval/dev)")

DEFAULT = ("videomme", "mvbench", "docvqa_val")


@pytest.fixture(scope="session")
def known_answer_checkpoint(tmp_path_factory):
    return build_known_answer_checkpoint(tmp_path_factory.mktemp("known_answer") / "ckpt")


def assert_expected(results: dict, task: str) -> None:
    for leaf, metrics in STANDINS[task].expected.items():
        for metric, value in metrics.items():
            key = metric if "," in metric else f"{metric},none"  # "<metric>,<filter>"
            assert results["results"][leaf][key] == pytest.approx(value), (leaf, metric)


def _log(process) -> str:
    return (process.stdout + process.stderr)[-6000:]


def test_default_benchmarks_on_their_real_task_code(known_answer_checkpoint, tmp_path, capsys):
    hf_home, out = tmp_path / "hf_home", tmp_path / "results"
    for task in DEFAULT:
        STANDINS[task].build(hf_home)
    process, results = run_lmms_eval(checkpoint=known_answer_checkpoint, hf_home=hf_home, out=out,
                                     tasks=",".join(DEFAULT))  # fmt: skip
    assert process.returncode == 0 and results is not None, _log(process)
    for task in DEFAULT:
        assert_expected(results, task)
    assert len(samples(out, "videomme")) == 4 and len(samples(out, "docvqa_val")) == 3
    log = process.stdout + process.stderr
    assert "codec selection on the fly" in log and "documents with missing media (scored as failed): 0" in log
    # The results table: every task, MVBench's mean over its 20 subtasks (10 of them 100, 10 of them 0).
    [path] = sorted(out.rglob("*_results.json"))
    assert results_table.main([str(path), "--tasks", ",".join(DEFAULT)]) == 0
    table = capsys.readouterr().out
    [mvbench] = [line for line in table.splitlines() if line.startswith("mvbench ")]
    assert "mean of 20" in mvbench and mvbench.endswith("50.000")
    assert "videomme_perception_score" in table and "anls" in table


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_torchrun_gathers_every_document(known_answer_checkpoint, tmp_path):
    hf_home, out = tmp_path / "hf_home", tmp_path / "results"
    STANDINS["videomme"].build(hf_home)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())]  # fmt: skip
    process, results = run_lmms_eval(checkpoint=known_answer_checkpoint, hf_home=hf_home, out=out, tasks="videomme",
                                     launcher=launcher, batch_size=1)  # fmt: skip
    log = process.stdout + process.stderr
    assert process.returncode == 0 and results is not None, _log(process)
    assert "rank 0/2" in log and "rank 1/2" in log  # two ranks, not two rank-0 processes
    # The known score over all 4 documents (each rank answered 2) and one sample per document.
    assert_expected(results, "videomme")
    assert sorted(sample["doc_id"] for sample in samples(out, "videomme")) == [0, 1, 2, 3]


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(set(STANDINS) - set(DEFAULT)))
def test_benchmark_on_its_real_task_code(task, known_answer_checkpoint, tmp_path):
    standin = STANDINS[task]
    hf_home, out = tmp_path / "hf_home", tmp_path / "results"
    standin.build(hf_home)
    process, results = run_lmms_eval(checkpoint=known_answer_checkpoint, hf_home=hf_home, out=out, tasks=task,
                                     model_args=standin.model_args, extra_env=standin.env)  # fmt: skip
    assert process.returncode == 0 and results is not None, _log(process)
    assert_expected(results, task)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["skip", "error"])
def test_a_missing_video_is_named_counted_and_follows_on_missing_video(mode, known_answer_checkpoint, tmp_path):
    hf_home, out = tmp_path / "hf_home", tmp_path / "results"
    STANDINS["videomme"].build(hf_home)
    (hf_home / "videomme" / "data" / "vid001.mp4").unlink()  # documents 2 and 3 (gold A and C)
    process, results = run_lmms_eval(checkpoint=known_answer_checkpoint, hf_home=hf_home, out=out, tasks="videomme",
                                     model_args=f"on_missing_video={mode}")  # fmt: skip
    log = process.stdout + process.stderr
    assert "vid001.mp4" in log
    if mode == "error":
        assert process.returncode != 0 and results is None
        return
    assert process.returncode == 0 and results is not None, _log(process)
    assert "documents with missing media (scored as failed): 2" in log
    # Documents 0 (A, right) and 1 (B, wrong) answered; 2 and 3 scored as failed.
    assert results["results"]["videomme"]["videomme_perception_score,none"] == pytest.approx(25.0)
