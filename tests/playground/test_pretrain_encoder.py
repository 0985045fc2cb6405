"""Stage 0 of the default run (issue 11): the tiny encoder's motion pretraining reads only the training clips, fits
their displacement, changes only the encoder, and writes a checkpoint the SFT and the demo load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.playground.pretrain_encoder import PretrainArguments, load_clips, pretrain, train_encoder
from llava.playground.tiny_checkpoint import build_playground_checkpoint
from tests.train.conftest import playground_module


@pytest.fixture(scope="module")
def playground(tmp_path_factory) -> Path:
    sizes = ["--train-videos", "9", "--eval-videos", "1", "--train-images", "2", "--eval-images", "1"]
    data = playground_module().main(["--out", str(tmp_path_factory.mktemp("pg")), *sizes])
    # Stage 0 must never read the held-out clips.
    for name in ("video_eval_codec.jsonl", "raw_video_eval.json", "image_eval.json"):
        (data / name).unlink()
    return data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_playground_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt")


def test_targets_follow_the_clip_motion(playground, tiny):
    pixels, positions, targets = load_clips(LlavaOVProcessor.from_pretrained(tiny), playground)
    assert len(pixels) == len(positions) == len(targets) == 9
    # 9 balanced clips: three static (0, 0), the others one unit step along one axis.
    assert int((targets.abs().sum(1) == 0).sum()) == 3
    assert set(targets.abs().sum(1).tolist()) == {0.0, 1.0}
    assert all(p.shape[-1] == 3 and int(p[:, 0].max()) > 0 for p in positions)  # codec cells after frame 0


def test_the_encoder_fits_the_motion_of_its_clips(playground, tiny):
    torch.manual_seed(0)
    tower = LlavaOVForConditionalGeneration.from_pretrained(tiny).model.vision_tower
    clips = load_clips(LlavaOVProcessor.from_pretrained(tiny), playground)
    losses = train_encoder(tower, clips, steps=120, batch_size=4, learning_rate=2e-3)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)


def test_pretrain_changes_only_the_encoder(playground, tiny, tmp_path):
    out = pretrain(PretrainArguments(model_path=str(tiny), output_dir=str(tmp_path / "motion"), data=str(playground),
                                     steps=3, batch_size=4))  # fmt: skip
    before, after = load_file(tiny / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all("vision_tower" in name for name in changed), sorted(changed)[:5]
    assert not [path.name for path in tmp_path.iterdir() if path.name != "motion"]  # no temporary folder left
    model = LlavaOVForConditionalGeneration.from_pretrained(out)
    processor = LlavaOVProcessor.from_pretrained(out)
    assert model.config.vision_config.hidden_size == 128 and processor.video_patch_size == 32


def test_too_few_clips_is_a_clear_error(playground, tiny, tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        pretrain(PretrainArguments(model_path=str(tiny), output_dir=str(tmp_path / "m"), data=str(playground),
                                   steps=1, batch_size=64))  # fmt: skip
    assert not (tmp_path / "m").exists()
