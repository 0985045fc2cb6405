"""The embedded default end to end (issue 11): the tiny checkpoint, its encoder motion-pretrained (stage 0) and then
trained by `sft_tiny.yaml` on the playground, reaches the held-out accuracies the issue asks for, and answers
time-mirrored clips differently. Slow: builds the playground and trains for a few minutes
(`pytest -m slow tests/playground`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cv_reader
from llava.data.synthetic import ClipSpec, render_clip, write_video
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.model.llava_ov.video_inputs import VideoFrames
from llava.playground.evaluate import EvalArguments, evaluate, first_word
from llava.playground.pretrain_encoder import PretrainArguments, pretrain
from llava.playground.tiny_checkpoint import build_playground_checkpoint
from llava.train.train import main as train_main
from tests.train.conftest import playground_module

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "llava" / "train" / "configs" / "sft_tiny.yaml"
# The bar for the default (README quick start).
MINIMUM = {"moves": 0.85, "colour": 0.90, "shape_colour": 0.90, "direction": 0.50}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("default")
    data = playground_module().main(["--out", str(root / "data")])
    checkpoint = build_playground_checkpoint(root / "tiny")
    motion = PretrainArguments(model_path=str(checkpoint), output_dir=str(root / "motion"), data=str(data))
    checkpoint = pretrain(motion)
    output = train_main([str(CONFIG), "--model_name_or_path", str(checkpoint), "--data_path",
                         str(data / "sft.yaml"), "--output_dir", str(root / "sft")])  # fmt: skip
    return output, data


@pytest.fixture(scope="module")
def held_out(trained) -> dict:
    output, data = trained
    return evaluate(EvalArguments(model_path=str(output), data=str(data)))


def test_default_reaches_the_held_out_bar(held_out):
    reached = {kind: held_out[kind]["accuracy"] for kind in MINIMUM}
    assert all(reached[kind] >= MINIMUM[kind] for kind in MINIMUM), reached


def test_time_mirrored_clips_get_different_directions(trained, tmp_path):
    output, _ = trained
    processor = LlavaOVProcessor.from_pretrained(output)
    model = LlavaOVForConditionalGeneration.from_pretrained(output).eval()
    question = [{"from": "human", "value": "<video>\nWhich way does the object move? Answer left, right, up or down."}]
    answers = {}
    for direction in ("right", "down"):
        frames = render_clip(ClipSpec("green", direction, None, "circle", seed=11))
        for name, clip in ((direction, frames), (f"{direction}_reversed", frames[::-1].copy())):
            selection = cv_reader.select_patches(
                write_video(tmp_path / f"{name}.mp4", clip), num_images=processor.num_video_frames,
                square_size=processor.video_square_size, patch_size=processor.video_patch_size,
            )  # fmt: skip
            video = VideoFrames(frames=selection.mosaics(), positions_thw=np.asarray(selection.positions_thw))
            batch = processor(conversations=[question], videos=[[video]], add_generation_prompt=True)
            with torch.inference_mode():
                generated = model.generate(**batch, max_new_tokens=4, do_sample=False)
            reply = processor.decode(generated[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            answers[name] = first_word(reply)
    assert answers["right"] != answers["right_reversed"] and answers["down"] != answers["down_reversed"], answers
