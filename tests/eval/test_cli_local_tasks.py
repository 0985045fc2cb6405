"""The real lmms-eval CLI end to end on the shipped local tasks (image, video, multiple choice) on the CPU."""

from __future__ import annotations

from .conftest import run_lmms_eval

TASKS = ("llava_ov_playground_video_qa", "llava_ov_playground_image_qa", "llava_ov_playground_video_mc")


def test_cli_runs_all_local_tasks_with_a_tiny_checkpoint(tiny_llava, playground_small, tmp_path):
    out = tmp_path / "run" / "results"
    out.parent.mkdir()
    process, results = run_lmms_eval(model_args=f"pretrained={tiny_llava},device=cpu,dtype=float32",
                                     tasks=",".join(TASKS), out=out, playground=playground_small, limit=3)  # fmt: skip
    scores = results["results"]
    for task in TASKS:
        metric = "acc,none" if task.endswith("_mc") else "accuracy,none"
        assert 0.0 <= scores[task][metric] <= 1.0, scores[task]
    assert scores["llava_ov_playground_video_qa"]["chance,none"] > 0
    log = process.stdout + process.stderr
    # Every video says which path it took, and the run ends with the counts.
    assert "codec selection on the fly" in log
    assert "end of run, videos: codec" in log
    # Samples are logged per task with the model's answers.
    assert len(list(out.rglob("*_samples_llava_ov_playground_*.jsonl"))) == len(TASKS)
