"""The playground-trained checkpoint answers the held-out playground video questions clearly above chance
through the lmms-eval CLI (the answers are known by construction)."""

from __future__ import annotations

import pytest

from .conftest import run_lmms_eval

LIMIT = 48  # questions (of 158): enough to separate ~0.6 from the ~0.35 chance level, ~1 min on 2 CPU cores


@pytest.mark.slow  # trains the tiny checkpoint when the checkout has none (minutes)
def test_trained_checkpoint_beats_chance_on_held_out_videos(sft_checkpoint, tmp_path):
    checkpoint, playground = sft_checkpoint
    out = tmp_path / "run" / "results"
    out.parent.mkdir()
    _, results = run_lmms_eval(model_args=f"pretrained={checkpoint},device=cpu,video_mode=codec",
                               tasks="llava_ov_playground_video_qa", out=out, playground=playground, limit=LIMIT,
                               batch_size=8)  # fmt: skip
    scores = results["results"]["llava_ov_playground_video_qa"]
    assert scores["accuracy,none"] >= scores["chance,none"] + 0.12, scores
