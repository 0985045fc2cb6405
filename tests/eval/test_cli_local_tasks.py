"""The real lmms-eval CLI end to end on the shipped local tasks (image, video, multiple choice) on the CPU, with a
known-answer checkpoint (tests/eval/standins.py): it says "yes" to every question, so the generation tasks' accuracy
is the share of questions whose gold answer is "yes", computed here from the gold answers alone."""

from __future__ import annotations

import pytest

from .conftest import run_lmms_eval
from .standins import build_known_answer_checkpoint, samples

TASKS = ("llava_ov_playground_video_qa", "llava_ov_playground_image_qa", "llava_ov_playground_video_mc")
LIMIT = 8


@pytest.fixture(scope="module")
def says_yes(tmp_path_factory):
    return build_known_answer_checkpoint(tmp_path_factory.mktemp("says_yes") / "ckpt", answer="yes")


def test_cli_scores_a_known_answer_model_on_all_local_tasks(says_yes, playground_small, tmp_path):
    out = tmp_path / "run" / "results"
    out.parent.mkdir()
    model_args = f"pretrained={says_yes},device=cpu,dtype=float32"
    process, results = run_lmms_eval(model_args=model_args, tasks=",".join(TASKS), out=out,
                                     playground=playground_small, limit=LIMIT)  # fmt: skip
    scores = results["results"]
    for task in ("llava_ov_playground_video_qa", "llava_ov_playground_image_qa"):
        logged = samples(out, task)
        assert logged and all(sample["filtered_resps"] == "yes" for sample in logged), logged[0]
        expected = sum(sample["target"] == "yes" for sample in logged) / len(logged)
        assert scores[task]["accuracy,none"] == pytest.approx(expected), task
    assert 0.0 <= scores["llava_ov_playground_video_mc"]["acc,none"] <= 1.0
    assert scores["llava_ov_playground_video_qa"]["chance,none"] > 0
    log = process.stdout + process.stderr
    # Every video says which path it took, and the run ends with the counts.
    assert "codec selection on the fly" in log
    assert "end of run, videos: codec" in log
