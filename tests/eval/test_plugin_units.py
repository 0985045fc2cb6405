"""Pieces of the plugin that need no model: registration, stop strings, visuals, task helpers, the results check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image

from cv_reader.assets import asset_key
from llava.data.synthetic import CHANCE, COLOURS, DIRECTIONS
from llava.eval import local_tasks_dir, playground_tasks
from llava.eval.llava_ov_encoder import LlavaOVEncoder, split_visuals, truncate_at_stop
from llava.eval.video_sources import VideoSources, candidate_keys


def test_entry_point_resolves_to_the_simple_class():
    from lmms_eval.models import get_model, list_available_models

    assert "llava_ov_encoder" in list_available_models()
    model_class = get_model("llava_ov_encoder", force_simple=True)
    assert model_class is LlavaOVEncoder and model_class.is_simple


def test_entry_point_import_is_light():
    # lmms-eval imports the entry point on every run, even for other models: neither it nor `import llava` may pull
    # torch, transformers or our model code (the Auto classes are registered when the model class is imported).
    code = (
        "import sys; import llava, llava.eval.registration as r; "
        "heavy = [m for m in ('torch', 'transformers', 'lmms_eval', 'llava.model', 'llava.eval.llava_ov_encoder') "
        "if m in sys.modules]; print(r.MODEL_ID, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "llava_ov_encoder []"


def test_entry_point_manifest_names_the_model_class_without_importing_it():
    code = (
        "import sys; from importlib.metadata import entry_points; "
        "[ep] = [e for e in entry_points(group='lmms_eval.models') if e.name == 'llava_ov_encoder']; "
        "manifests = ep.load()(); "
        "print(manifests[0].model_id, 'llava.eval.llava_ov_encoder' in sys.modules, 'llava.model' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["llava_ov_encoder", "False", "False"]


@pytest.mark.parametrize(
    ("text", "until", "expected"),
    [("yes\nno", ["\n"], "yes"), ("red. blue\n\n", ["\n\n", "."], "red"), ("left", [], "left"), ("up", [""], "up")],
)
def test_truncate_at_stop(text, until, expected):
    assert truncate_at_stop(text, until) == expected


def test_split_visuals_tells_videos_from_images():
    image = Image.new("RGB", (8, 8))
    images, videos = split_visuals([image, "/d/a.MP4", {"type": "video", "path": "/d/b.mkv"}, "/d/c.png"])
    assert images == [image, "/d/c.png"] and videos == ["/d/a.MP4", "/d/b.mkv"]
    with pytest.raises(ValueError, match="not supported"):
        split_visuals([b"audio"])


def test_playground_choices_match_the_generator():
    choices = playground_tasks.CHOICES
    assert set(choices["direction"]) == set(DIRECTIONS) and set(choices["colour"]) == set(COLOURS)
    assert choices["moves"] == ["yes", "no"]
    assert {kind: 1 / len(options) for kind, options in choices.items()} == CHANCE


def test_local_tasks_are_shipped_next_to_the_package():
    names = sorted(path.stem for path in local_tasks_dir().rglob("*.yaml"))
    assert names == ["llava_ov_playground_image_qa", "llava_ov_playground_video_mc", "llava_ov_playground_video_qa"]


def test_candidate_keys_cover_cv_reader_keys(tmp_path):
    video = tmp_path / "bench" / "sub" / "clip.mp4"
    keys = [key for key, _ in candidate_keys(video)]
    # `cv_reader precompute --video_root <any ancestor>` keys, the path as written, and the upstream stem key.
    assert asset_key(video, tmp_path / "bench") in keys and asset_key(video, tmp_path) in keys
    assert asset_key(str(video)) == keys[0] and keys[-1] == "clip"


def test_visual_markers_go_in_front_unless_the_context_places_them():
    model = LlavaOVEncoder.__new__(LlavaOVEncoder)  # no checkpoint needed for the prompt layout
    model.videos = VideoSources(mode="uniform", num_frames=2, square_size=32, patch_size=16)
    image = Image.new("RGB", (8, 8))
    conversation, images, videos = model._sample("What colour?", [image])
    assert conversation == [{"from": "human", "value": "<image>\nWhat colour?"}] and images == [image] and not videos
    conversation, _, _ = model._sample("Look: <image> What colour?", [image])
    assert conversation[0]["value"] == "Look: <image> What colour?"


@pytest.mark.slow  # lmms-eval's own start-up (its TaskManager) takes tens of seconds on 2 CPU cores
def test_lmms_eval_task_listing_stays_clean(tmp_path):
    # Our entry point is imported by every lmms-eval command: the listing must show no plugin error.
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1")
    process = subprocess.run([sys.executable, "-m", "lmms_eval", "--tasks", "list"], capture_output=True, text=True,
                             env=env, timeout=600)  # fmt: skip
    log = process.stdout + process.stderr
    assert process.returncode == 0 and "videomme" in process.stdout and "mvbench" in process.stdout
    assert "Traceback" not in log and "Failed to load model entry-point" not in log
